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
-- Covering for per-address statistics: no table reads for an offender's details.
CREATE INDEX events_ip ON events (ip_key, time, kind, restored, jail);

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
CREATE INDEX active_bans_expires ON active_bans (expires);

-- Rolling windows (the last 24 h, 7 d and 30 d before a moving cut): the
-- dashboard's headline figures and rankings, kept exact by adding each new ban
-- and, when a window's cut moves forward, removing the bans that left it.
-- Reads are then independent of history and range size.
CREATE TABLE win_state (
    win      INTEGER PRIMARY KEY,           -- window length in milliseconds
    cut      INTEGER NOT NULL,              -- bans at or after this time are in
    building INTEGER NOT NULL DEFAULT 0     -- 1 while built from history: totals come after, set-based
);

-- New bans per window and address, with the address's attributes at the time.
CREATE TABLE win_ip (
    win     INTEGER NOT NULL,
    ip_key  BLOB    NOT NULL,
    bans    INTEGER NOT NULL,
    country TEXT,
    asn     INTEGER,
    as_org  TEXT,
    network TEXT    NOT NULL,
    PRIMARY KEY (win, ip_key)
) WITHOUT ROWID;
CREATE INDEX win_ip_rank ON win_ip (win, bans DESC);

-- New bans per window, address and jail / host (an address can hit several).
CREATE TABLE win_ip_jail (
    win INTEGER NOT NULL, ip_key BLOB NOT NULL, jail TEXT NOT NULL, bans INTEGER NOT NULL,
    PRIMARY KEY (win, ip_key, jail)
) WITHOUT ROWID;
CREATE TABLE win_ip_host (
    win INTEGER NOT NULL, ip_key BLOB NOT NULL, host TEXT NOT NULL, bans INTEGER NOT NULL,
    PRIMARY KEY (win, ip_key, host)
) WITHOUT ROWID;

-- Totals per window and key, maintained by the triggers below.
-- kind: 'all' (key ''), 'country', 'asn' (key 'AS123'), 'network', 'jail', 'host'.
CREATE TABLE win_attr (
    win   INTEGER NOT NULL,
    kind  TEXT    NOT NULL,
    key   TEXT    NOT NULL,
    label TEXT,
    bans  INTEGER NOT NULL,
    ips   INTEGER NOT NULL,
    PRIMARY KEY (win, kind, key)
) WITHOUT ROWID;
CREATE INDEX win_attr_rank ON win_attr (win, kind, bans DESC, key);

CREATE TRIGGER win_ip_added AFTER INSERT ON win_ip
WHEN NOT EXISTS (SELECT 1 FROM win_state WHERE win = NEW.win AND building) BEGIN
    INSERT INTO win_attr (win, kind, key, label, bans, ips)
    SELECT NEW.win, k.kind, k.key, k.label, NEW.bans, 1 FROM (
        SELECT 'all' AS kind, '' AS key, NULL AS label
        UNION ALL SELECT 'country', NEW.country, NULL WHERE NEW.country IS NOT NULL
        UNION ALL SELECT 'asn', 'AS' || NEW.asn, NEW.as_org WHERE NEW.asn IS NOT NULL
        UNION ALL SELECT 'network', NEW.network, NULL
    ) k WHERE true
    ON CONFLICT (win, kind, key) DO UPDATE SET
        bans = bans + excluded.bans, ips = ips + 1, label = coalesce(excluded.label, label);
END;

CREATE TRIGGER win_ip_removed AFTER DELETE ON win_ip BEGIN
    UPDATE win_attr SET bans = bans - OLD.bans, ips = ips - 1
    WHERE win = OLD.win AND kind = 'all' AND key = '';
    UPDATE win_attr SET bans = bans - OLD.bans, ips = ips - 1
    WHERE win = OLD.win AND kind = 'country' AND key = OLD.country;
    UPDATE win_attr SET bans = bans - OLD.bans, ips = ips - 1
    WHERE win = OLD.win AND kind = 'asn' AND key = 'AS' || OLD.asn;
    UPDATE win_attr SET bans = bans - OLD.bans, ips = ips - 1
    WHERE win = OLD.win AND kind = 'network' AND key = OLD.network;
END;

CREATE TRIGGER win_ip_changed AFTER UPDATE OF country, asn, as_org, network ON win_ip BEGIN
    UPDATE win_attr SET bans = bans - OLD.bans, ips = ips - 1
    WHERE win = OLD.win AND kind = 'all' AND key = '';
    UPDATE win_attr SET bans = bans - OLD.bans, ips = ips - 1
    WHERE win = OLD.win AND kind = 'country' AND key = OLD.country;
    UPDATE win_attr SET bans = bans - OLD.bans, ips = ips - 1
    WHERE win = OLD.win AND kind = 'asn' AND key = 'AS' || OLD.asn;
    UPDATE win_attr SET bans = bans - OLD.bans, ips = ips - 1
    WHERE win = OLD.win AND kind = 'network' AND key = OLD.network;
    INSERT INTO win_attr (win, kind, key, label, bans, ips)
    SELECT NEW.win, k.kind, k.key, k.label, NEW.bans, 1 FROM (
        SELECT 'all' AS kind, '' AS key, NULL AS label
        UNION ALL SELECT 'country', NEW.country, NULL WHERE NEW.country IS NOT NULL
        UNION ALL SELECT 'asn', 'AS' || NEW.asn, NEW.as_org WHERE NEW.asn IS NOT NULL
        UNION ALL SELECT 'network', NEW.network, NULL
    ) k WHERE true
    ON CONFLICT (win, kind, key) DO UPDATE SET
        bans = bans + excluded.bans, ips = ips + 1, label = coalesce(excluded.label, label);
END;

-- A change of bans alone (the common case) moves no address between keys.
CREATE TRIGGER win_ip_counted AFTER UPDATE OF bans ON win_ip BEGIN
    UPDATE win_attr SET bans = bans + NEW.bans - OLD.bans
    WHERE win = NEW.win AND kind = 'all' AND key = '';
    UPDATE win_attr SET bans = bans + NEW.bans - OLD.bans
    WHERE win = NEW.win AND kind = 'country' AND key = NEW.country;
    UPDATE win_attr SET bans = bans + NEW.bans - OLD.bans
    WHERE win = NEW.win AND kind = 'asn' AND key = 'AS' || NEW.asn;
    UPDATE win_attr SET bans = bans + NEW.bans - OLD.bans
    WHERE win = NEW.win AND kind = 'network' AND key = NEW.network;
END;

CREATE TRIGGER win_ip_jail_added AFTER INSERT ON win_ip_jail
WHEN NOT EXISTS (SELECT 1 FROM win_state WHERE win = NEW.win AND building) BEGIN
    INSERT INTO win_attr (win, kind, key, bans, ips) VALUES (NEW.win, 'jail', NEW.jail, NEW.bans, 1)
    ON CONFLICT (win, kind, key) DO UPDATE SET bans = bans + excluded.bans, ips = ips + 1;
END;
CREATE TRIGGER win_ip_jail_changed AFTER UPDATE OF bans ON win_ip_jail BEGIN
    UPDATE win_attr SET bans = bans + NEW.bans - OLD.bans
    WHERE win = NEW.win AND kind = 'jail' AND key = NEW.jail;
END;
CREATE TRIGGER win_ip_jail_removed AFTER DELETE ON win_ip_jail BEGIN
    UPDATE win_attr SET bans = bans - OLD.bans, ips = ips - 1
    WHERE win = OLD.win AND kind = 'jail' AND key = OLD.jail;
END;

CREATE TRIGGER win_ip_host_added AFTER INSERT ON win_ip_host
WHEN NOT EXISTS (SELECT 1 FROM win_state WHERE win = NEW.win AND building) BEGIN
    INSERT INTO win_attr (win, kind, key, bans, ips) VALUES (NEW.win, 'host', NEW.host, NEW.bans, 1)
    ON CONFLICT (win, kind, key) DO UPDATE SET bans = bans + excluded.bans, ips = ips + 1;
END;
CREATE TRIGGER win_ip_host_changed AFTER UPDATE OF bans ON win_ip_host BEGIN
    UPDATE win_attr SET bans = bans + NEW.bans - OLD.bans
    WHERE win = NEW.win AND kind = 'host' AND key = NEW.host;
END;
CREATE TRIGGER win_ip_host_removed AFTER DELETE ON win_ip_host BEGIN
    UPDATE win_attr SET bans = bans - OLD.bans, ips = ips - 1
    WHERE win = OLD.win AND kind = 'host' AND key = OLD.host;
END;
