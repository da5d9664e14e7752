-- One session per charging. The cloud, the charger's OCPP transaction and a portal export
-- can each report the same charging; every copy is kept, and the copies name the session
-- that stands for the charging. zapanalytics.store.canonical decides which one (same
-- charger, overlapping time; precedence signed cloud > cloud > OCPP > portal) and writes
-- these columns after every ingestion that adds sessions.

DROP VIEW IF EXISTS canonical_sessions;

-- The session that stands for this charging: the row itself when it is canonical, another
-- session when this row is a copy; NULL until the resolution step has seen the row.
ALTER TABLE sessions ADD COLUMN canonical_session_id VARCHAR;
-- Why a copy is a copy (the matching rule and the precedence that chose the canonical one);
-- NULL for a canonical session.
ALTER TABLE sessions ADD COLUMN duplicate_reason VARCHAR;

-- One row per charging. A resolved row is canonical when it names itself. A row the step
-- has not seen yet is canonical unless it is an OCPP or portal row that a cloud session on
-- the same charger (by id or serial) overlaps in time, so a store written by an ingestion
-- that does not resolve copies never counts a charging twice.
CREATE VIEW canonical_sessions AS
SELECT s.*
FROM sessions s
WHERE coalesce(s.canonical_session_id, s.session_id) = s.session_id
  AND (
    s.source LIKE 'zaptec%'
    OR NOT EXISTS (
        SELECT 1
        FROM sessions c
        LEFT JOIN chargers cc ON cc.charger_id = c.charger_id
        LEFT JOIN chargers sc ON sc.charger_id = s.charger_id
        WHERE c.source LIKE 'zaptec%'
          AND c.canonical_session_id IS NULL
          AND NOT coalesce(c.is_void, FALSE)
          AND (c.charger_id = s.charger_id
               OR coalesce(cc.device_id, c.charger_id) = coalesce(sc.device_id, s.charger_id))
          AND c.start_utc < coalesce(s.end_utc, s.start_utc) + INTERVAL 2 MINUTE
          AND coalesce(c.end_utc, c.start_utc) + INTERVAL 2 MINUTE > s.start_utc
    )
  );

-- The copies: every session that is not the canonical one of its charging, so that
-- sessions = canonical_sessions + session_copies at all times. canonical_session_id and
-- duplicate_reason say which session stands for it once the resolution step has run.
CREATE VIEW session_copies AS
SELECT s.*
FROM sessions s
WHERE NOT EXISTS (SELECT 1 FROM canonical_sessions c WHERE c.session_id = s.session_id);
