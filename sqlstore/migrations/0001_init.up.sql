-- The store's tables, in the schema the store was opened with (the
-- migration runs with search_path set to it).

-- One row: bumped by every write, so that stores know when to reload.
CREATE TABLE experiments_version (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version   bigint  NOT NULL
);
INSERT INTO experiments_version (version) VALUES (0);

CREATE TABLE experiments_flags (
    name       text        PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 255),
    rule       jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text        NOT NULL DEFAULT ''
);

-- state: 1 = on, 2 = off (experiments.ForceOn, experiments.ForceOff).
CREATE TABLE experiments_course_overrides (
    flag       text        NOT NULL CHECK (length(flag) BETWEEN 1 AND 255),
    course_key text        NOT NULL CHECK (length(course_key) BETWEEN 1 AND 255),
    state      smallint    NOT NULL CHECK (state IN (1, 2)),
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text        NOT NULL DEFAULT '',
    PRIMARY KEY (flag, course_key)
);

CREATE TABLE experiments_org_overrides (
    flag       text        NOT NULL CHECK (length(flag) BETWEEN 1 AND 255),
    org        text        NOT NULL CHECK (length(org) BETWEEN 1 AND 255),
    state      smallint    NOT NULL CHECK (state IN (1, 2)),
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text        NOT NULL DEFAULT '',
    PRIMARY KEY (flag, org)
);

CREATE TABLE experiments_values (
    experiment_id integer     NOT NULL CHECK (experiment_id >= 0),
    key           text        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    value         text        NOT NULL CHECK (length(value) BETWEEN 1 AND 4096),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    updated_by    text        NOT NULL DEFAULT '',
    PRIMARY KEY (experiment_id, key)
);

CREATE TABLE experiments_enrollments (
    user_id    text        NOT NULL CHECK (length(user_id) BETWEEN 1 AND 255),
    course_key text        NOT NULL CHECK (length(course_key) BETWEEN 1 AND 255),
    created    timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text        NOT NULL DEFAULT '',
    PRIMARY KEY (user_id, course_key)
);

-- Every write, with the value before and after (NULL: absent).
CREATE TABLE experiments_audit (
    id     bigserial   PRIMARY KEY,
    at     timestamptz NOT NULL DEFAULT now(),
    actor  text        NOT NULL,
    entity text        NOT NULL, -- flag, course_override, org_override, value, enrollment
    key    text        NOT NULL, -- e.g. "course_experience.upgrade" or "course_experience.upgrade course-v1:X+Y+Z"
    old    jsonb,
    new    jsonb
);
CREATE INDEX experiments_audit_entity_key ON experiments_audit (entity, key, at);

-- "User bucketed" events written by the durable tracker. id makes a
-- retried batch idempotent.
CREATE TABLE experiments_events (
    id         uuid        PRIMARY KEY,
    name       text        NOT NULL,
    time       timestamptz NOT NULL,
    user_id    text        NOT NULL,
    site       text        NOT NULL,
    app_label  text        NOT NULL,
    experiment text        NOT NULL,
    course_key text        NOT NULL,
    bucket     integer     NOT NULL,
    is_staff   boolean     NOT NULL
);
CREATE INDEX experiments_events_experiment ON experiments_events (app_label, experiment, course_key, time);

-- experiments_bucket is experiments.SHA256Bucket in SQL: the big-endian
-- uint32 of the first four bytes of sha256(group ‖ 0x00 ‖ key), modulo
-- buckets; 0 when buckets < 1.
CREATE FUNCTION experiments_bucket(group_name text, user_key text, buckets integer)
RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT CASE WHEN buckets < 1 THEN 0 ELSE
        -- << and | share a precedence in PostgreSQL: parenthesize each shift.
        (((get_byte(d, 0)::bigint << 24) | (get_byte(d, 1)::bigint << 16) |
          (get_byte(d, 2)::bigint << 8)  |  get_byte(d, 3)::bigint) % buckets)::integer
    END
    FROM (SELECT sha256(convert_to(group_name, 'UTF8') || '\x00'::bytea || convert_to(user_key, 'UTF8')) AS d) AS h
$$;
