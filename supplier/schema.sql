-- The supplier simulator's state (docs/supplier.md). Created by the supplier at
-- startup, idempotently; embedded into the binary by supplier/CMakeLists.txt.
-- Times are microseconds since the Unix epoch; amounts are cents.
CREATE SCHEMA IF NOT EXISTS supplier;

-- Hold, ticket, confirmation and authorization ids: FH-000001, TK-000002, ...
CREATE SEQUENCE IF NOT EXISTS supplier.ids;

-- Flight inventory, one row per flight id, created on first use.
CREATE TABLE IF NOT EXISTS supplier.flights (
  flight_id     text PRIMARY KEY,
  capacity      integer NOT NULL CHECK (capacity >= 0),
  created_at_us bigint NOT NULL
);

-- A hotel's rooms a night when set by the admin API (else the default).
CREATE TABLE IF NOT EXISTS supplier.hotels (
  hotel_id text PRIMARY KEY,
  rooms    integer NOT NULL CHECK (rooms >= 0)
);

-- Hotel inventory, one row per hotel and night, created on first use.
CREATE TABLE IF NOT EXISTS supplier.hotel_nights (
  hotel_id text NOT NULL,
  night    date NOT NULL,
  capacity integer NOT NULL CHECK (capacity >= 0),
  PRIMARY KEY (hotel_id, night)
);

-- A held hold counts toward capacity until expires_at_us; a ticketed one
-- until it is canceled.
CREATE TABLE IF NOT EXISTS supplier.flight_holds (
  hold_id       text PRIMARY KEY,
  flight_id     text NOT NULL,
  passengers    integer NOT NULL,
  fare_cents    bigint NOT NULL,
  booking_ref   text NOT NULL,
  status        text NOT NULL CHECK (status IN ('held', 'ticketed', 'released', 'canceled')),
  expires_at_us bigint NOT NULL,
  ticket_id     text,
  created_at_us bigint NOT NULL,
  updated_at_us bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS flight_holds_live ON supplier.flight_holds (flight_id)
  WHERE status IN ('held', 'ticketed');

CREATE TABLE IF NOT EXISTS supplier.hotel_holds (
  hold_id            text PRIMARY KEY,
  hotel_id           text NOT NULL,
  check_in           date NOT NULL,
  check_out          date NOT NULL,
  rooms              integer NOT NULL,
  nightly_rate_cents bigint NOT NULL,
  total_cents        bigint NOT NULL,
  booking_ref        text NOT NULL,
  status             text NOT NULL CHECK (status IN ('held', 'booked', 'released', 'canceled')),
  expires_at_us      bigint NOT NULL,
  confirmation_id    text,
  created_at_us      bigint NOT NULL,
  updated_at_us      bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS hotel_holds_live ON supplier.hotel_holds (hotel_id)
  WHERE status IN ('held', 'booked');

CREATE TABLE IF NOT EXISTS supplier.payments (
  authorization_id text PRIMARY KEY,
  booking_ref      text NOT NULL,
  currency         text NOT NULL,
  card_token       text NOT NULL,
  amount_cents     bigint NOT NULL,
  captured_cents   bigint NOT NULL DEFAULT 0,
  refunded_cents   bigint NOT NULL DEFAULT 0,
  refund_count     integer NOT NULL DEFAULT 0,
  status           text NOT NULL CHECK (status IN ('authorized', 'captured', 'voided')),
  created_at_us    bigint NOT NULL,
  updated_at_us    bigint NOT NULL
);

-- One row per Idempotency-Key, written in the transaction of the effect.
CREATE TABLE IF NOT EXISTS supplier.idempotency_keys (
  key           text PRIMARY KEY,
  method        text NOT NULL,
  path          text NOT NULL,
  body_hash     text NOT NULL,
  status        integer,
  response_body text,
  created_at_us bigint NOT NULL
);
