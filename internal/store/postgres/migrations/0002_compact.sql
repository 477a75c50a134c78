-- An audit row may hold a run of n records of one agent and one event (see store.PackAudit);
-- rows written before hold one. Seqs are taken from the sequence before the insert, so that
-- records are written many to a statement. Events lose their per-agent index: no service path
-- reads events by agent (explain reads the audit), and it cost an index insert per event.
ALTER TABLE audit ADD COLUMN n INTEGER NOT NULL DEFAULT 1;
DROP INDEX IF EXISTS events_agent_seq;
