-- Sticky assignments (experiments.Assignments): the bucket a flag made
-- WithStickyBuckets first gave a user by hashing, per experiment. Runs,
-- like 0001, with search_path set to the store's schema.

-- Not part of the configuration: no version bump, no audit. experiment is
-- the flag's hashing group (ExperimentFlag.AssignmentKey): its full name,
-- plus "." and the course key for a course-aware flag in a course. A save
-- keeps the smaller bucket when one is there (the first, or one that
-- replaces a bucket the flag no longer has).
CREATE TABLE experiments_assignments (
    user_id    text        NOT NULL CHECK (length(user_id) BETWEEN 1 AND 255),
    experiment text        NOT NULL CHECK (length(experiment) BETWEEN 1 AND 512),
    bucket     integer     NOT NULL CHECK (bucket BETWEEN 0 AND 1023),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, experiment)
);
