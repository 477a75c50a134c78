-- Times are integer nanoseconds since the Unix epoch, UTC; NULL is the zero time.

CREATE TABLE events (
	seq        INTEGER PRIMARY KEY,
	dedupe_key TEXT    NOT NULL UNIQUE,
	agent      TEXT    NOT NULL,
	system     TEXT    NOT NULL,
	type       TEXT    NOT NULL,
	at         INTEGER,
	body       BLOB    NOT NULL
);
CREATE INDEX events_agent_seq ON events (agent, seq DESC);

CREATE TABLE agents (
	key        TEXT PRIMARY KEY,
	state      BLOB NOT NULL,
	updated_at INTEGER
) WITHOUT ROWID;

CREATE TABLE audit (
	seq       INTEGER PRIMARY KEY,
	agent     TEXT    NOT NULL,
	at        INTEGER,
	kind      TEXT    NOT NULL,
	event_seq INTEGER NOT NULL DEFAULT 0,
	body      BLOB    NOT NULL
);
CREATE INDEX audit_agent_seq ON audit (agent, seq DESC);

CREATE TABLE checkpoints (
	name  TEXT PRIMARY KEY,
	value TEXT NOT NULL
) WITHOUT ROWID;
