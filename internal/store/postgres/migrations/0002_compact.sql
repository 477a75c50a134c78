-- An audit row may hold a run of n records of one agent and one event (see store.PackAudit);
-- rows written before hold one. Seqs are taken from the sequence before the insert, so that
-- records are written many to a statement.
ALTER TABLE audit ADD COLUMN n INTEGER NOT NULL DEFAULT 1;
