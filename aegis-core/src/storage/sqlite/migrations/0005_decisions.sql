-- Decisions in the order they were stored (AUTOINCREMENT: an id is never reused),
-- and the agents' last reports. Both kept as JSON beside the columns they are found by.
CREATE TABLE decisions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    key         TEXT UNIQUE,               -- makes storing idempotent; NULL for most
    first_key   BLOB NOT NULL,             -- the target's first and last address (ip_key)
    last_key    BLOB NOT NULL,
    policy_host TEXT,                      -- the host whose ban made a policy decision
    created     INTEGER NOT NULL,          -- epoch ms
    body        TEXT NOT NULL
);
CREATE INDEX decisions_by_target ON decisions (first_key, last_key);
CREATE INDEX decisions_by_policy_host ON decisions (policy_host, created)
    WHERE policy_host IS NOT NULL;

CREATE TABLE agents (
    host TEXT PRIMARY KEY,
    body TEXT NOT NULL
) WITHOUT ROWID;

-- What each host's agent did with each decision.
CREATE TABLE decision_applied (
    decision INTEGER NOT NULL,
    host     TEXT NOT NULL,
    body     TEXT NOT NULL,
    PRIMARY KEY (decision, host)
) WITHOUT ROWID;
