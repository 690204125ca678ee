-- Goals, exposures and conversions: what experiment results are computed
-- from. Runs, like 0001, with search_path set to the store's schema.

-- Goals, part of the configuration (in the snapshot, bumping the version;
-- audited with entity 'goal'). goal is experiments.Goal as JSON (its json
-- tags).
CREATE TABLE experiments_goals (
    name       text        PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 255),
    goal       jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text        NOT NULL DEFAULT ''
);

-- The first exposure of a user to an experiment: a flag, in a course or
-- in none (''). Once per user, not once per session: the primary key
-- keeps one row, the earliest. Results read the exposures of one
-- (flag, course_key), which the primary key's order serves.
CREATE TABLE experiments_exposures (
    flag       text        NOT NULL,
    course_key text        NOT NULL,
    user_id    text        NOT NULL,
    bucket     integer     NOT NULL,
    time       timestamptz NOT NULL,
    PRIMARY KEY (flag, course_key, user_id)
);

-- Every conversion. id makes a retried batch idempotent.
CREATE TABLE experiments_conversions (
    id      uuid             PRIMARY KEY,
    goal    text             NOT NULL,
    user_id text             NOT NULL,
    value   double precision NOT NULL,
    time    timestamptz      NOT NULL
);
-- Results join each exposure to the conversions of the same user, for
-- given goals, from the exposure's time on: an index range scan per
-- exposed user, index-only with value included.
CREATE INDEX experiments_conversions_user_goal_time ON experiments_conversions (user_id, goal, time) INCLUDE (value);
