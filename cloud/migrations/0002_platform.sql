-- edgemeter cloud schema, platform (issue 5): consumption rollups and outages.
-- Applied once, in one transaction, by src/store/migrations.ts; never edit after release.

-- Consumption per meter and UTC hour, maintained at ingest from energy-register differences
-- (see cloud/README.md "Rollups"): the delta between two consecutive readings of a meter is
-- spread over the buckets it spans by linear interpolation at the bucket boundaries.
CREATE TABLE consumption_hourly (
  meter_id    text NOT NULL,
  hour_start  timestamptz NOT NULL,
  import_kwh  double precision NOT NULL DEFAULT 0,
  export_kwh  double precision NOT NULL DEFAULT 0,
  PRIMARY KEY (meter_id, hour_start)
);

-- Consumption per meter and local calendar day (the meter's time zone, or the cloud's default):
-- a day has 23, 24 or 25 hours, so it is apportioned by its own boundaries, not summed from
-- UTC hours.
CREATE TABLE consumption_daily (
  meter_id    text NOT NULL,
  day         date NOT NULL,
  time_zone   text NOT NULL,
  import_kwh  double precision NOT NULL DEFAULT 0,
  export_kwh  double precision NOT NULL DEFAULT 0,
  PRIMARY KEY (meter_id, day)
);

-- A meter's supply interruption: from an interruption event, its gateway going offline (last
-- will) or silence longer than the configured number of poll intervals; ended_at is set when
-- readings resume. At most one open outage per meter.
CREATE TABLE outages (
  id          bigserial PRIMARY KEY,
  meter_id    text NOT NULL,
  gateway_id  text,
  cause       text NOT NULL CHECK (cause IN ('interruption', 'gateway_offline', 'silence')),
  started_at  timestamptz NOT NULL,
  ended_at    timestamptz
);
CREATE UNIQUE INDEX outages_one_open_per_meter_idx ON outages (meter_id) WHERE ended_at IS NULL;
CREATE INDEX outages_started_at_idx ON outages (started_at);
CREATE INDEX outages_gateway_idx ON outages (gateway_id, started_at);
