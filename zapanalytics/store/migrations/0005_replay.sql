-- Load-balancing replay: what the load balancer lets the chargers share.

-- AvailableCurrent of the installation: current per line the chargers may share [A].
-- It is often below the main fuse (PropertyMainFuseCurrent → main_fuse_a; MaxCurrent →
-- max_current_a), which the replay would otherwise have to assume. NULL: not reported.
ALTER TABLE installations ADD COLUMN available_current_a DOUBLE;
-- AvailableCurrentMode: 0 = static (or set through the API); non-zero = the available current
-- follows the household load measured at the AMS meter (APM, e.g. Zaptec Sense).
-- NULL: not reported.
ALTER TABLE installations ADD COLUMN available_current_mode INTEGER;
