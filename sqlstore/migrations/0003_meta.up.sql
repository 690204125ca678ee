-- Experiment meta: notes, archived, winner. Runs, like 0001, with
-- search_path set to the store's schema.

-- Part of the configuration (in the snapshot, bumping the version;
-- audited with entity 'meta', key flag). flag is the experiment's main
-- flag; meta is experiments.ExperimentMeta as JSON (its json tags), never
-- the zero value (SetExperimentMeta deletes the row instead).
CREATE TABLE experiments_meta (
    flag       text        PRIMARY KEY CHECK (length(flag) BETWEEN 1 AND 255),
    meta       jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text        NOT NULL DEFAULT ''
);
