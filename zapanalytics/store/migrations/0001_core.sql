-- The store contract: these tables and columns are public. Add columns freely in
-- later migrations; never rename or drop one.

CREATE TABLE installations (
    installation_id VARCHAR PRIMARY KEY,
    name            VARCHAR,
    timezone        VARCHAR NOT NULL,
    network_type    VARCHAR,
    phase_count     INTEGER,
    main_fuse_a     DOUBLE,
    max_current_a   DOUBLE,
    price_area      VARCHAR,
    source          VARCHAR NOT NULL,
    ingested_at     TIMESTAMPTZ NOT NULL
);

CREATE TABLE chargers (
    charger_id       VARCHAR PRIMARY KEY,
    device_id        VARCHAR,
    installation_id  VARCHAR,
    circuit_id       VARCHAR,
    name             VARCHAR,
    model            VARCHAR,
    firmware_version VARCHAR,
    min_current_a    DOUBLE,
    max_current_a    DOUBLE,
    phase_rotation   VARCHAR,
    source           VARCHAR NOT NULL,
    ingested_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE sessions (
    session_id      VARCHAR PRIMARY KEY,
    charger_id      VARCHAR,
    installation_id VARCHAR,
    user_id         VARCHAR,
    user_name       VARCHAR,
    token_name      VARCHAR,
    start_utc       TIMESTAMPTZ NOT NULL,
    end_utc         TIMESTAMPTZ,
    energy_kwh      DOUBLE,
    meter_start_kwh DOUBLE,
    meter_stop_kwh  DOUBLE,
    commit_metadata INTEGER,
    is_void         BOOLEAN,
    is_aborted      BOOLEAN,
    is_offline      BOOLEAN,
    signed_session  VARCHAR,
    source          VARCHAR NOT NULL,
    ingested_at     TIMESTAMPTZ NOT NULL
);

CREATE TABLE energy_details (
    session_id VARCHAR NOT NULL,
    ts_utc     TIMESTAMPTZ NOT NULL,
    energy_kwh DOUBLE NOT NULL,
    PRIMARY KEY (session_id, ts_utc)
);

CREATE TABLE meter_values (
    charger_id          VARCHAR NOT NULL,
    ts_utc              TIMESTAMPTZ NOT NULL,
    source              VARCHAR NOT NULL,
    energy_register_kwh DOUBLE,
    power_w             DOUBLE,
    current_l1_a        DOUBLE,
    current_l2_a        DOUBLE,
    current_l3_a        DOUBLE,
    voltage_l1_v        DOUBLE,
    voltage_l2_v        DOUBLE,
    voltage_l3_v        DOUBLE,
    current_offered_a   DOUBLE,
    temperature_c       DOUBLE,
    PRIMARY KEY (charger_id, ts_utc, source)
);

CREATE TABLE charger_states (
    charger_id VARCHAR NOT NULL,
    ts_utc     TIMESTAMPTZ NOT NULL,
    state_id   INTEGER NOT NULL,
    state_name VARCHAR,
    value      VARCHAR,
    PRIMARY KEY (charger_id, ts_utc, state_id)
);

CREATE TABLE reference_readings (
    meter_id          VARCHAR NOT NULL,
    ts_utc            TIMESTAMPTZ NOT NULL,
    kind              VARCHAR NOT NULL,
    installation_id   VARCHAR,
    charger_id        VARCHAR,
    energy_import_kwh DOUBLE,
    power_w           DOUBLE,
    current_l1_a      DOUBLE,
    current_l2_a      DOUBLE,
    current_l3_a      DOUBLE,
    voltage_l1_v      DOUBLE,
    voltage_l2_v      DOUBLE,
    voltage_l3_v      DOUBLE,
    PRIMARY KEY (meter_id, ts_utc)
);

CREATE TABLE prices (
    price_area       VARCHAR NOT NULL,
    start_utc        TIMESTAMPTZ NOT NULL,
    end_utc          TIMESTAMPTZ NOT NULL,
    spot_nok_per_kwh DOUBLE,
    spot_eur_per_kwh DOUBLE,
    source           VARCHAR NOT NULL,
    PRIMARY KEY (price_area, start_utc)
);

CREATE TABLE ingest_runs (
    run_id           VARCHAR PRIMARY KEY,
    source           VARCHAR NOT NULL,
    started_at       TIMESTAMPTZ NOT NULL,
    finished_at      TIMESTAMPTZ,
    rows_in          BIGINT,
    rows_stored      BIGINT,
    rows_quarantined BIGINT,
    status           VARCHAR NOT NULL,
    error            VARCHAR
);

-- One row per distinct rejected record: a rerun that meets the same bad record again
-- counts it in its run but does not add it twice.
CREATE TABLE quarantine (
    run_id         VARCHAR NOT NULL,
    source         VARCHAR NOT NULL,
    table_name     VARCHAR NOT NULL,
    reason         VARCHAR NOT NULL,
    raw            VARCHAR,
    raw_sha256     VARCHAR NOT NULL,
    quarantined_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source, table_name, raw_sha256)
);
