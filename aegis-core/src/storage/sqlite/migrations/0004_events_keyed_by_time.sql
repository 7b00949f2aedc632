-- Duplicates are found through a key that starts with the event's second: new
-- events land at the end of that index instead of all over it, which made a
-- batch rewrite most of the index. The per-address index keeps only what its
-- lookups need. The table is rebuilt once, keeping every row id.
CREATE TABLE events_new (
    id          INTEGER PRIMARY KEY,
    -- The whole second the id was made from (8 bytes, big-endian), then
    -- BanEvent::id() (12 bytes).
    event_key   BLOB    NOT NULL,
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
-- The second is the time rounded half to even, as the id rounds it; blobs are
-- joined as hex (`||` on blobs makes text).
INSERT INTO events_new
SELECT id,
       unhex(printf('%016llX',
           (time - ((time % 1000) + 1000) % 1000) / 1000
           + (((time % 1000) + 1000) % 1000 > 500)
           + (((time % 1000) + 1000) % 1000 = 500
              AND (((time - ((time % 1000) + 1000) % 1000) / 1000) % 2 + 2) % 2 = 1)
       ) || hex(event_id)),
       kind, ip, ip_key, jail, host, protocol, port, failures, time, bantime, bancount,
       restored, matches, user, country, city, latitude, longitude, asn, as_org, received_at
FROM events ORDER BY id;
DROP TABLE events;
ALTER TABLE events_new RENAME TO events;
CREATE UNIQUE INDEX events_key ON events (event_key);
CREATE INDEX events_time ON events (time);
CREATE INDEX events_ip ON events (ip_key, time);
