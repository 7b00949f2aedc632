-- New bans per 15-minute slot and country (the address's, as `ips` has it),
-- for a country's bans per day and its period-on-period counts.
CREATE TABLE country_slots (
    slot    INTEGER NOT NULL,
    country TEXT    NOT NULL,
    bans    INTEGER NOT NULL,
    PRIMARY KEY (slot, country)
) WITHOUT ROWID;
INSERT INTO country_slots (slot, country, bans)
SELECT e.time / 900000, i.country, count(*)
FROM events e CROSS JOIN ips i ON i.ip_key = e.ip_key
WHERE e.kind = 0 AND e.restored = 0 AND i.country IS NOT NULL
GROUP BY 1, 2;
