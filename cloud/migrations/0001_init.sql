-- edgemeter cloud schema, foundation (DESIGN "Storage"). All times are timestamptz (UTC).
-- Applied once, in one transaction, by src/store/migrations.ts; never edit after release:
-- add 0002_….sql instead.

CREATE TABLE gateways (
  gateway_id     text PRIMARY KEY,
  first_seen_at  timestamptz NOT NULL,
  last_seen_at   timestamptz NOT NULL,
  online         boolean NOT NULL DEFAULT false,
  -- The last status payload as sent (version, buffered readings, certificate expiry…).
  status         jsonb,
  -- The status payload's own ts, so a late redelivered status never overwrites a newer one.
  status_at      timestamptz
);

CREATE TABLE meters (
  meter_id         text PRIMARY KEY,
  -- The gateway that first reported the meter, unless a registry set it otherwise.
  gateway_id       text REFERENCES gateways (gateway_id),
  customer_id      text,
  tariff_id        text,
  latitude         double precision,
  longitude        double precision,
  -- IANA zone for billing periods (DST-correct); null means the utility's default.
  time_zone        text,
  first_seen_at    timestamptz,
  last_reading_at  timestamptz
);
CREATE INDEX meters_gateway_id_idx ON meters (gateway_id);

-- Raw interval readings, one partition per calendar month (UTC), created on demand by the
-- store before it inserts into that month. A partitioned table's unique key must contain the
-- partition key, hence PK (meter_id, ts): a replayed batch hits it and changes nothing.
CREATE TABLE readings (
  meter_id           text NOT NULL,
  ts                 timestamptz NOT NULL,
  gateway_id         text NOT NULL,
  seq                bigint NOT NULL,
  clock              text NOT NULL CHECK (clock IN ('synced', 'unsynced')),
  received_at        timestamptz NOT NULL,
  "values"           jsonb NOT NULL,
  errors             jsonb,
  -- Cumulative registers pulled out of "values" for rollups and billing (kWh).
  import_energy_kwh  double precision,
  export_energy_kwh  double precision,
  PRIMARY KEY (meter_id, ts)
) PARTITION BY RANGE (ts);

-- Safety net: a row whose month partition could not be created lands here instead of failing.
CREATE TABLE readings_default PARTITION OF readings DEFAULT;

CREATE INDEX readings_gateway_seq_idx ON readings (gateway_id, seq);

CREATE TABLE events (
  gateway_id   text NOT NULL,
  -- Unique per gateway; the start and the end of one fault share it.
  event_id     text NOT NULL,
  state        text NOT NULL CHECK (state IN ('start', 'end', 'instant')),
  meter_id     text NOT NULL,
  kind         text NOT NULL,
  phase        text CHECK (phase IN ('L1', 'L2', 'L3')),
  -- In the unit of the measurement the fault concerns (V, Hz…).
  value        double precision,
  threshold    double precision,
  ts           timestamptz NOT NULL,
  duration_ms  bigint,
  clock        text NOT NULL CHECK (clock IN ('synced', 'unsynced')),
  received_at  timestamptz NOT NULL,
  PRIMARY KEY (gateway_id, event_id, state)
);
CREATE INDEX events_meter_ts_idx ON events (meter_id, ts);
CREATE INDEX events_ts_idx ON events (ts);

-- Messages the ingest could not accept, kept for inspection (payload truncated to 256 KB).
CREATE TABLE rejected_messages (
  id           bigserial PRIMARY KEY,
  received_at  timestamptz NOT NULL,
  topic        text NOT NULL,
  reason       text NOT NULL,
  payload      bytea NOT NULL
);
CREATE INDEX rejected_messages_received_at_idx ON rejected_messages (received_at);

-- API keys: only the SHA-256 of a key is stored; the key itself is shown once at creation.
CREATE TABLE api_keys (
  id          bigserial PRIMARY KEY,
  name        text NOT NULL,
  key_hash    text NOT NULL UNIQUE,
  scopes      text[] NOT NULL CHECK (scopes <@ ARRAY['read', 'admin']::text[]),
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz
);
