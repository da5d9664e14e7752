-- Billing: where the metering point is (VAT and elavgift exemptions), its grid company and
-- Norgespris choice, and the statements issued from the store.

-- Owner settings, not source data: no ingestion writes them (they are left out of the
-- pandera InstallationsSchema on purpose, so that re-ingesting an installation never
-- overwrites them with NULL). VAT on household electricity is exempt in Nordland, Troms and
-- Finnmark by county, elavgift in Finnmark and Nord-Troms by municipality; the price area
-- decides neither.
ALTER TABLE installations ADD COLUMN county VARCHAR;
ALTER TABLE installations ADD COLUMN municipality VARCHAR;
-- Key of a grid tariff in the rate tables, e.g. 'elvia'.
ALTER TABLE installations ADD COLUMN grid_company VARCHAR;
-- The metering point has opted in to Norgespris (NULL: not known, treated as no).
ALTER TABLE installations ADD COLUMN norgespris BOOLEAN;

-- One row per issued bill (installation, month, method, version). statement_json is the
-- whole statement document exactly as issued; a later rate change never rewrites it, a
-- reissue adds a new version. rates_sha256 identifies the rate tables used.
CREATE TABLE issued_statements (
    installation_id VARCHAR NOT NULL,
    month           VARCHAR NOT NULL,
    method          VARCHAR NOT NULL,
    version         INTEGER NOT NULL,
    issued_at       TIMESTAMPTZ NOT NULL,
    rates_sha256    VARCHAR NOT NULL,
    total_cost_nok  DECIMAL(18, 2) NOT NULL,
    statement_json  VARCHAR NOT NULL,
    PRIMARY KEY (installation_id, month, method, version)
);
