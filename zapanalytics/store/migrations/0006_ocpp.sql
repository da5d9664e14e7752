-- OCPP 1.6J collector: what Zaptec chargers send that the core contract lacks, and the
-- loader's position in each spool.

-- Power.Offered: what the charger offered the car at the sample time (the allocator's
-- setpoint seen from the charger), total over phases [W].
ALTER TABLE meter_values ADD COLUMN power_offered_w DOUBLE;

-- One row per spool segment: the loader has stored every complete line before
-- offset_bytes. done = the segment was sealed and read to its end. Re-reading a segment
-- is harmless (upserts are idempotent); the checkpoint only saves the work.
CREATE TABLE ocpp_spool_progress (
    spool_id     VARCHAR NOT NULL,
    segment      BIGINT NOT NULL,
    offset_bytes BIGINT NOT NULL,
    lines_loaded BIGINT NOT NULL,
    done         BOOLEAN NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (spool_id, segment)
);

-- Reference meters (AMS/HAN, MID sub-meters): the register's step [kWh], e.g. 0.01 for an
-- Aidon or Kamstrup 1.8.0 in 10 Wh or a MID meter showing two decimals. The accuracy
-- audit needs it for the quantisation bound.
ALTER TABLE reference_readings ADD COLUMN energy_resolution_kwh DOUBLE;
