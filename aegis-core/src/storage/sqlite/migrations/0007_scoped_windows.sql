-- A window may be narrowed to a host, a jail or a country (any of them), so
-- that those views answer long ranges as the unscoped ones do. `win` becomes
-- an id (existing windows keep their length as theirs); `span` is the length.
ALTER TABLE win_state ADD COLUMN span INTEGER NOT NULL DEFAULT 0;
ALTER TABLE win_state ADD COLUMN host TEXT;
ALTER TABLE win_state ADD COLUMN jail TEXT;
ALTER TABLE win_state ADD COLUMN country TEXT;
-- 0: asked for by a request too large to build it; `maintain` builds it.
ALTER TABLE win_state ADD COLUMN built INTEGER NOT NULL DEFAULT 1;
-- When a request last read it: scoped windows left unread are dropped.
ALTER TABLE win_state ADD COLUMN read_at INTEGER NOT NULL DEFAULT 0;
UPDATE win_state SET span = win;
CREATE INDEX win_state_span ON win_state (span);

-- A window being emptied (or built) keeps its totals itself: the per-row
-- triggers stand aside for removals too.
DROP TRIGGER win_ip_removed;
CREATE TRIGGER win_ip_removed AFTER DELETE ON win_ip
WHEN NOT EXISTS (SELECT 1 FROM win_state WHERE win = OLD.win AND building) BEGIN
    UPDATE win_attr SET bans = bans - OLD.bans, ips = ips - 1
    WHERE win = OLD.win AND kind = 'all' AND key = '';
    UPDATE win_attr SET bans = bans - OLD.bans, ips = ips - 1
    WHERE win = OLD.win AND kind = 'country' AND key = OLD.country;
    UPDATE win_attr SET bans = bans - OLD.bans, ips = ips - 1
    WHERE win = OLD.win AND kind = 'asn' AND key = 'AS' || OLD.asn;
    UPDATE win_attr SET bans = bans - OLD.bans, ips = ips - 1
    WHERE win = OLD.win AND kind = 'network' AND key = OLD.network;
END;
DROP TRIGGER win_ip_jail_removed;
CREATE TRIGGER win_ip_jail_removed AFTER DELETE ON win_ip_jail
WHEN NOT EXISTS (SELECT 1 FROM win_state WHERE win = OLD.win AND building) BEGIN
    UPDATE win_attr SET bans = bans - OLD.bans, ips = ips - 1
    WHERE win = OLD.win AND kind = 'jail' AND key = OLD.jail;
END;
DROP TRIGGER win_ip_host_removed;
CREATE TRIGGER win_ip_host_removed AFTER DELETE ON win_ip_host
WHEN NOT EXISTS (SELECT 1 FROM win_state WHERE win = OLD.win AND building) BEGIN
    UPDATE win_attr SET bans = bans - OLD.bans, ips = ips - 1
    WHERE win = OLD.win AND kind = 'host' AND key = OLD.host;
END;
