-- Billing: who buys the power at the metering point. Owner settings like county and
-- grid_company (0003): no ingestion writes them.
-- customer_type decides VAT, elavgift, strømstøtte, Norgespris and the Enova fee's form:
-- 'household' (one dwelling), 'coop' (a housing co-op's common meter) or 'business'.
-- NULL: not known, billed as a household.
ALTER TABLE installations ADD COLUMN customer_type VARCHAR;
-- Dwellings behind a co-op's common meter (strømstøtte cap = 5,000 kWh × dwellings per month).
ALTER TABLE installations ADD COLUMN dwellings INTEGER;
