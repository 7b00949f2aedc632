-- An IPv4 address's key takes 5 bytes instead of 16: a tag, then the
-- address (see `key.rs`). The tag keeps keys in the order they had, so a
-- network is still one range of keys. Keys already short (a store set back
-- to an older version) are left alone.
CREATE TEMP TABLE stored_key (old BLOB PRIMARY KEY, new BLOB NOT NULL) WITHOUT ROWID;
INSERT INTO stored_key (old, new)
SELECT k, CASE
        WHEN substr(k, 1, 12) = x'00000000000000000000FFFF' THEN unhex('01' || hex(substr(k, 13)))
        WHEN k < x'00000000000000000000FFFF' THEN unhex('00' || hex(k))
        ELSE unhex('02' || hex(k))
    END
FROM (SELECT ip_key AS k FROM ips
      UNION SELECT ip_key FROM events
      UNION SELECT ip_key FROM geo_cache
      UNION SELECT first_key FROM decisions
      UNION SELECT last_key FROM decisions)
WHERE length(k) = 16;

-- The events without their per-address index, built again in one sorted pass.
DROP INDEX IF EXISTS events_ip;
UPDATE events SET ip_key = m.new FROM stored_key m WHERE m.old = events.ip_key;
CREATE INDEX events_ip ON events (ip_key, time);
UPDATE ips SET ip_key = m.new FROM stored_key m WHERE m.old = ips.ip_key;
UPDATE ip_day SET ip_key = m.new FROM stored_key m WHERE m.old = ip_day.ip_key;
UPDATE active_bans SET ip_key = m.new FROM stored_key m WHERE m.old = active_bans.ip_key;
UPDATE geo_cache SET ip_key = m.new FROM stored_key m WHERE m.old = geo_cache.ip_key;
UPDATE win_ip SET ip_key = m.new FROM stored_key m WHERE m.old = win_ip.ip_key;
UPDATE win_ip_jail SET ip_key = m.new FROM stored_key m WHERE m.old = win_ip_jail.ip_key;
UPDATE win_ip_host SET ip_key = m.new FROM stored_key m WHERE m.old = win_ip_host.ip_key;
UPDATE decisions SET first_key = m.new FROM stored_key m WHERE m.old = decisions.first_key;
UPDATE decisions SET last_key = m.new FROM stored_key m WHERE m.old = decisions.last_key;
DROP TABLE stored_key;
