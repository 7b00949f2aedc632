-- Addresses are no longer listed by country: a country's window is built
-- from `ip_day`, which carries each address's country, and checks the few
-- raw events it reads against `ips` by key.
DROP INDEX ips_country;
