-- Every event as received. Times are milliseconds since the epoch (UTC).
CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    event_id    BLOB    NOT NULL UNIQUE,   -- BanEvent::id(), 12 bytes
    kind        INTEGER NOT NULL,          -- 0 ban, 1 unban
    ip          TEXT    NOT NULL,
    ip_key      BLOB    NOT NULL,          -- 16 bytes, IPv4 mapped: CIDR filters are ranges
    jail        TEXT    NOT NULL,
    host        TEXT    NOT NULL,
    protocol    TEXT,
    port        TEXT,
    failures    INTEGER,
    time        INTEGER NOT NULL,
    bantime     INTEGER,
    bancount    INTEGER,
    restored    INTEGER NOT NULL,
    matches     TEXT,                      -- JSON array of strings
    user        TEXT,
    country     TEXT,
    city        TEXT,
    latitude    REAL,
    longitude   REAL,
    asn         INTEGER,
    as_org      TEXT,
    received_at INTEGER NOT NULL
);
CREATE INDEX events_time ON events (time);
CREATE INDEX events_ip ON events (ip_key, time);
CREATE INDEX events_jail ON events (jail, time);
CREATE INDEX events_host ON events (host, time);

-- The latest known attributes of each address, shared by the statistics.
CREATE TABLE ips (
    ip_key  BLOB PRIMARY KEY,
    network TEXT NOT NULL,                 -- /24 or /64
    country TEXT,
    asn     INTEGER,
    as_org  TEXT
) WITHOUT ROWID;
CREATE INDEX ips_country ON ips (country);

-- New bans per UTC day, address, host and jail, maintained on insert, so that
-- ranked statistics read a few rows per address and day, whatever the history size.
CREATE TABLE ip_day (
    day    INTEGER NOT NULL,               -- days since the epoch
    ip_key BLOB    NOT NULL,
    host   TEXT    NOT NULL,
    jail   TEXT    NOT NULL,
    bans   INTEGER NOT NULL,
    first  INTEGER NOT NULL,
    last   INTEGER NOT NULL,
    PRIMARY KEY (day, ip_key, host, jail)
) WITHOUT ROWID;

-- New bans per 15-minute slot: every real time zone's midnight falls on a slot
-- boundary, so per-day charts in any zone read at most 96 rows a day.
CREATE TABLE ban_slots (
    slot INTEGER NOT NULL,
    host TEXT    NOT NULL,
    jail TEXT    NOT NULL,
    bans INTEGER NOT NULL,
    PRIMARY KEY (slot, host, jail)
) WITHOUT ROWID;

-- The latest ban of each address per host and jail, removed by its unban.
CREATE TABLE active_bans (
    ip_key    BLOB    NOT NULL,
    host      TEXT    NOT NULL,
    jail      TEXT    NOT NULL,
    banned_at INTEGER NOT NULL,
    expires   INTEGER,                     -- NULL: permanent
    PRIMARY KEY (ip_key, host, jail)
) WITHOUT ROWID;
