-- Times are BIGINT nanoseconds since the Unix epoch, UTC (TIMESTAMPTZ keeps only microseconds);
-- NULL is the zero time.

CREATE TABLE events (
	seq        BIGSERIAL PRIMARY KEY,
	dedupe_key TEXT   NOT NULL UNIQUE,
	agent      TEXT   NOT NULL,
	system     TEXT   NOT NULL,
	type       TEXT   NOT NULL,
	at_ns      BIGINT,
	body       BYTEA  NOT NULL
);
CREATE INDEX events_agent_seq ON events (agent, seq DESC);

CREATE TABLE agents (
	key           TEXT PRIMARY KEY,
	state         BYTEA NOT NULL,
	updated_at_ns BIGINT
);

CREATE TABLE audit (
	seq       BIGSERIAL PRIMARY KEY,
	agent     TEXT   NOT NULL,
	at_ns     BIGINT,
	kind      TEXT   NOT NULL,
	event_seq BIGINT NOT NULL DEFAULT 0,
	body      BYTEA  NOT NULL
);
CREATE INDEX audit_agent_seq ON audit (agent, seq DESC);

CREATE TABLE checkpoints (
	name  TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
