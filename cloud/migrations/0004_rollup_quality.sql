-- edgemeter cloud schema, rollup data quality (issue 7 follow-up): billing reads the hourly
-- rollups instead of raw readings, so each hour records how it was measured.
-- Applied once, in one transaction, by src/store/migrations.ts; never edit after release.
--
-- Maintained at ingest as counts (src/store/consumptionRollups.ts qualityDeltas), so late and
-- out-of-order batches apply as differences like the kWh:
--   readings           register reads stamped inside the hour
--   unsynced_readings  of which with an unsynchronised clock
--   gap_intervals      intervals between consecutive reads longer than ROLLUP_GAP_MS that
--                      overlap the hour (its consumption was interpolated across a gap)
-- Rows written before this migration keep readings = 0: billing treats such hours as unknown
-- quality and bills those meters from their raw readings.
ALTER TABLE consumption_hourly
  ADD COLUMN readings integer NOT NULL DEFAULT 0,
  ADD COLUMN unsynced_readings integer NOT NULL DEFAULT 0,
  ADD COLUMN gap_intervals integer NOT NULL DEFAULT 0;
