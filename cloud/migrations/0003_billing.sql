-- edgemeter cloud schema, billing (issue 7): tariffs, tariff assignments, meter exchanges,
-- bill runs, bills (draft → finalised, immutable once finalised), adjustments and an audit log.
-- Applied once, in one transaction, by src/store/migrations.ts; never edit after release.

-- A tariff as its OpenEI URDB record (validated by cloud/src/billing/tariff.ts before insert).
CREATE TABLE tariffs (
  tariff_id   text PRIMARY KEY,
  label       text,
  currency    text NOT NULL,
  urdb        jsonb NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- Which tariff a meter (its customer) is billed under, from valid_from to valid_to (exclusive,
-- null = open). Move-in is the first row's valid_from, move-out the last row's valid_to; a
-- change mid-period is two rows and the bill prorates.
CREATE TABLE meter_tariffs (
  meter_id     text NOT NULL,
  valid_from   timestamptz NOT NULL,
  valid_to     timestamptz,
  tariff_id    text NOT NULL REFERENCES tariffs (tariff_id),
  customer_id  text,
  PRIMARY KEY (meter_id, valid_from),
  CHECK (valid_to IS NULL OR valid_to > valid_from)
);

-- A meter replaced in the field: the old meter's final and the new meter's first register values.
CREATE TABLE meter_exchanges (
  meter_id               text NOT NULL,
  exchanged_at           timestamptz NOT NULL,
  old_final_import_kwh   double precision NOT NULL,
  new_start_import_kwh   double precision NOT NULL,
  old_final_export_kwh   double precision NOT NULL DEFAULT 0,
  new_start_export_kwh   double precision NOT NULL DEFAULT 0,
  PRIMARY KEY (meter_id, exchanged_at)
);

CREATE TABLE bill_runs (
  id              bigserial PRIMARY KEY,
  period          text NOT NULL,
  trigger         text NOT NULL CHECK (trigger IN ('cli', 'schedule', 'api')),
  dry_run         boolean NOT NULL,
  started_at      timestamptz NOT NULL,
  finished_at     timestamptz,
  status          text NOT NULL CHECK (status IN ('running', 'done', 'failed')),
  meters          integer NOT NULL DEFAULT 0,
  bills_created   integer NOT NULL DEFAULT 0,
  bills_updated   integer NOT NULL DEFAULT 0,
  bills_unchanged integer NOT NULL DEFAULT 0,
  adjustments     integer NOT NULL DEFAULT 0,
  estimated       integer NOT NULL DEFAULT 0,
  error           text
);
CREATE INDEX bill_runs_period_idx ON bill_runs (period, started_at);

CREATE TABLE bills (
  id              bigserial PRIMARY KEY,
  meter_id        text NOT NULL,
  period          text NOT NULL,
  version         integer NOT NULL DEFAULT 1,
  status          text NOT NULL CHECK (status IN ('draft', 'finalised', 'cancelled')),
  run_id          bigint REFERENCES bill_runs (id),
  currency        text NOT NULL,
  time_zone       text NOT NULL,
  import_kwh      double precision NOT NULL,
  total_minor     bigint NOT NULL,
  estimated       boolean NOT NULL,
  -- The whole bill (reads, intervals per TOU period, line items, VEE flags) as computed.
  content         jsonb NOT NULL,
  content_sha256  text NOT NULL,
  created_at      timestamptz NOT NULL,
  updated_at      timestamptz NOT NULL,
  finalised_at    timestamptz,
  cancelled_at    timestamptz
);
-- One live bill per meter and period; cancelled ones stay for the record.
CREATE UNIQUE INDEX bills_live_idx ON bills (meter_id, period) WHERE status <> 'cancelled';
CREATE INDEX bills_period_idx ON bills (period, meter_id);

-- A finalised bill is immutable: the only change allowed is its cancellation (an audited admin
-- action). Enforced here, so no code path (or psql session) can rewrite a sent bill.
CREATE FUNCTION bills_finalised_immutable() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF OLD.status <> 'draft' THEN
      RAISE EXCEPTION 'bill % is %: it cannot be deleted', OLD.id, OLD.status;
    END IF;
    RETURN OLD;
  END IF;
  IF OLD.status = 'cancelled' THEN
    RAISE EXCEPTION 'bill % is cancelled: it cannot change', OLD.id;
  END IF;
  IF OLD.status = 'finalised' AND (
       NEW.status <> 'cancelled' OR NEW.content IS DISTINCT FROM OLD.content
       OR NEW.total_minor <> OLD.total_minor OR NEW.import_kwh <> OLD.import_kwh
       OR NEW.meter_id <> OLD.meter_id OR NEW.period <> OLD.period) THEN
    RAISE EXCEPTION 'bill % is finalised: it is immutable (cancel and rebill instead)', OLD.id;
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER bills_finalised_immutable BEFORE UPDATE OR DELETE ON bills
  FOR EACH ROW EXECUTE FUNCTION bills_finalised_immutable();

-- Late or corrected data for a finalised bill: the difference, carried to the meter's next bill.
CREATE TABLE bill_adjustments (
  id                  bigserial PRIMARY KEY,
  meter_id            text NOT NULL,
  -- The finalised bill whose period the late data belongs to.
  original_bill_id    bigint NOT NULL REFERENCES bills (id),
  amount_minor        bigint NOT NULL,
  import_kwh          double precision NOT NULL,
  reason              text NOT NULL,
  -- The later period whose bill carries it (null until a run for a later period picks it up).
  applied_in_period   text,
  created_at          timestamptz NOT NULL,
  UNIQUE (original_bill_id)
);

CREATE TABLE bill_audit (
  id       bigserial PRIMARY KEY,
  at       timestamptz NOT NULL,
  actor    text NOT NULL,
  action   text NOT NULL CHECK (action IN ('finalise', 'cancel', 'rebill', 'run')),
  bill_id  bigint REFERENCES bills (id),
  period   text,
  detail   jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX bill_audit_bill_idx ON bill_audit (bill_id);
