-- The bookings read model: one row per trip booking, kept current by the
-- booking workflows (activities/booking_store.cc) for the MCP tools and for
-- operators. Not part of the engine's history: it can be rebuilt from it.
-- `locked_by` is the workflow run working on the booking; BookTrip,
-- ModifyBooking and CancelBooking take it in turn, so two never interleave.
-- `version` orders writes: a retried, older write never overwrites a newer one.
CREATE TABLE bookings (
  booking_id     text PRIMARY KEY,
  tenant         text NOT NULL,
  status         text NOT NULL,
  workflow_id    text NOT NULL,
  booking        jsonb NOT NULL,
  version        bigint NOT NULL,
  locked_by      text,
  created_at_us  bigint NOT NULL,
  updated_at_us  bigint NOT NULL
);
CREATE INDEX bookings_by_tenant ON bookings (tenant, updated_at_us DESC);
CREATE INDEX bookings_by_status ON bookings (status, updated_at_us DESC);
