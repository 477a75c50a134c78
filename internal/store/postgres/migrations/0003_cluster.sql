-- Replicas on one database (issue 13). One row of lease says who leads: holder is the
-- replica's id ('' when none), expires_at the database time the lease ends, and epoch the
-- fencing number, incremented at every takeover; every write of the engine checks it in its
-- own transaction, so a deposed leader can never commit.
CREATE TABLE lease (
	name       TEXT PRIMARY KEY,
	holder     TEXT        NOT NULL,
	epoch      BIGINT      NOT NULL,
	expires_at TIMESTAMPTZ NOT NULL
);
INSERT INTO lease (name, holder, epoch, expires_at) VALUES ('leader', '', 0, '-infinity');

-- Every replica says it is alive here; GET /api/v1/cluster lists them.
CREATE TABLE replicas (
	id        TEXT PRIMARY KEY,
	addr      TEXT        NOT NULL,
	last_seen TIMESTAMPTZ NOT NULL
);

-- Events a replica that does not lead accepted (webhook, bridge), for the leader to apply.
CREATE TABLE inbox (
	seq         BIGSERIAL PRIMARY KEY,
	body        BYTEA       NOT NULL,
	received_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
