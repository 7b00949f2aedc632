-- Rolling windows are folded from the events after their watermark when read
-- (or by `maintain`), not on every insert: a ban costs the same however many
-- windows there are. Windows kept until now were folded up to the newest event.
ALTER TABLE win_state ADD COLUMN seen INTEGER NOT NULL DEFAULT 0;
UPDATE win_state SET seen = (SELECT coalesce(max(id), 0) FROM events);

-- New bans per 15-minute slot over every host and jail: unscoped charts and
-- counts read one row per slot instead of one per slot, host and jail.
CREATE TABLE ban_totals (
    slot INTEGER PRIMARY KEY,
    bans INTEGER NOT NULL
);
INSERT INTO ban_totals (slot, bans) SELECT slot, sum(bans) FROM ban_slots GROUP BY slot;

-- A large fold recounts a window's totals at its end: the per-row triggers
-- on counts stand aside meanwhile, like those on new rows.
DROP TRIGGER win_ip_counted;
CREATE TRIGGER win_ip_counted AFTER UPDATE OF bans ON win_ip
WHEN NOT EXISTS (SELECT 1 FROM win_state WHERE win = NEW.win AND building) BEGIN
    UPDATE win_attr SET bans = bans + NEW.bans - OLD.bans
    WHERE win = NEW.win AND kind = 'all' AND key = '';
    UPDATE win_attr SET bans = bans + NEW.bans - OLD.bans
    WHERE win = NEW.win AND kind = 'country' AND key = NEW.country;
    UPDATE win_attr SET bans = bans + NEW.bans - OLD.bans
    WHERE win = NEW.win AND kind = 'asn' AND key = 'AS' || NEW.asn;
    UPDATE win_attr SET bans = bans + NEW.bans - OLD.bans
    WHERE win = NEW.win AND kind = 'network' AND key = NEW.network;
END;
DROP TRIGGER win_ip_jail_changed;
CREATE TRIGGER win_ip_jail_changed AFTER UPDATE OF bans ON win_ip_jail
WHEN NOT EXISTS (SELECT 1 FROM win_state WHERE win = NEW.win AND building) BEGIN
    UPDATE win_attr SET bans = bans + NEW.bans - OLD.bans
    WHERE win = NEW.win AND kind = 'jail' AND key = NEW.jail;
END;
DROP TRIGGER win_ip_host_changed;
CREATE TRIGGER win_ip_host_changed AFTER UPDATE OF bans ON win_ip_host
WHEN NOT EXISTS (SELECT 1 FROM win_state WHERE win = NEW.win AND building) BEGIN
    UPDATE win_attr SET bans = bans + NEW.bans - OLD.bans
    WHERE win = NEW.win AND kind = 'host' AND key = NEW.host;
END;
