-- State long-running services keep in the store (the watcher's alerts in force), as JSON.
CREATE TABLE service_state (
    name TEXT PRIMARY KEY,
    body TEXT NOT NULL
) WITHOUT ROWID;
