-- Each address-day carries the address's location (as `ips` has it, kept in
-- step whenever it changes), so that a range is ranked by country or AS
-- without looking each of its addresses up.
ALTER TABLE ip_day ADD COLUMN country TEXT;
ALTER TABLE ip_day ADD COLUMN asn INTEGER;
UPDATE ip_day SET country = i.country, asn = i.asn FROM ips i WHERE i.ip_key = ip_day.ip_key;
