-- Zaptec cloud sync: more of each charge-history item, and the sync cursor per installation.

-- ExternalId: e.g. the OCPP transactionId of a session started through OCPP.
ALTER TABLE sessions ADD COLUMN external_id VARCHAR;
-- A Void session names the session that replaced it (ReplacedBySessionId).
ALTER TABLE sessions ADD COLUMN replaced_by_session_id VARCHAR;
-- EndDateTime: when the cloud closed the session. For firmware >= 3.2 end_utc holds
-- CommitEndDateTime (the real end); the two differ by hours or days for offline sessions.
ALTER TABLE sessions ADD COLUMN cloud_end_utc TIMESTAMPTZ;
ALTER TABLE sessions ADD COLUMN firmware_version VARCHAR;
-- Sum of the EnergyDetails deltas, and whether it misses Energy beyond rounding
-- (NULL when the session has no EnergyDetails, e.g. firmware before 3.2).
ALTER TABLE sessions ADD COLUMN energy_details_sum_kwh DOUBLE;
ALTER TABLE sessions ADD COLUMN details_mismatch BOOLEAN;

-- One row per installation. cursor_utc: charge history is complete up to this time as of
-- the last finished sync. pending_*: the window of a sync in progress and the next page to
-- fetch, so a killed sync resumes where it stopped.
CREATE TABLE zaptec_sync_state (
    installation_id   VARCHAR PRIMARY KEY,
    cursor_utc        TIMESTAMPTZ,
    pending_from_utc  TIMESTAMPTZ,
    pending_to_utc    TIMESTAMPTZ,
    pending_next_page INTEGER,
    updated_at        TIMESTAMPTZ NOT NULL
);
