-- One physical charging session can reach the store twice: from the Zaptec cloud (its
-- UUID) and from the charger's own OCPP transaction ("ocpp:<charge point>:<id>"). Both rows
-- are kept, since comparing them is an audit, but every analysis that attributes energy
-- to users reads canonical_sessions: an OCPP session is left out when a cloud session on the
-- same charger (matched by charger id or by serial) overlaps it in time.
CREATE VIEW canonical_sessions AS
SELECT s.*
FROM sessions s
WHERE s.source IS DISTINCT FROM 'ocpp'
   OR NOT EXISTS (
        SELECT 1
        FROM sessions c
        LEFT JOIN chargers cc ON cc.charger_id = c.charger_id
        LEFT JOIN chargers sc ON sc.charger_id = s.charger_id
        WHERE c.source IS DISTINCT FROM 'ocpp'
          AND (c.charger_id = s.charger_id OR cc.device_id = coalesce(sc.device_id, s.charger_id))
          AND c.start_utc < coalesce(s.end_utc, s.start_utc)
          AND coalesce(c.end_utc, c.start_utc) > s.start_utc
   );
