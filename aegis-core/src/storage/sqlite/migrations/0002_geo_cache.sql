-- Answers of the online geolocation provider, so that no address is asked twice.
CREATE TABLE geo_cache (
    ip_key     BLOB PRIMARY KEY,
    geo        TEXT,                        -- JSON Geo; NULL: the provider knew nothing
    fetched_at INTEGER NOT NULL
) WITHOUT ROWID;
