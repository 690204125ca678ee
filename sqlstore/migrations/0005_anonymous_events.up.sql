-- Events of anonymous visitors (experiments.WithAnonymous) carry the
-- visitor's anonymous ID; user_id is '' for them.
ALTER TABLE experiments_events ADD COLUMN anonymous_id text NOT NULL DEFAULT '';
