// End-to-end tests of Itinera's MCP server with the official TypeScript SDK
// client (npm @modelcontextprotocol/sdk, pinned in package-lock.json), over
// Streamable HTTP (`itinera dev`'s /mcp) and stdio (`itinera mcp`, whose
// workflows dev's workers run). tests/mcp/e2e.sh starts and restarts the
// servers and runs the phases in order:
//
//   main           both transports: tools/list, search, book (with progress),
//                  the same idempotency key again, a fare change confirmed
//                  through confirm_fare_change, get/list/cancel, tasks (in one
//                  client, and tasks/result from a new client after the first
//                  went away); then starts the tasks the restart test reads
//                  and writes them to --state
//   after-restart  (dev was killed with SIGKILL and started again on the same
//                  data dir and port) those tasks are finished and read with
//                  tasks/get and tasks/result from new clients
//   security       against a dev with two tokens for tenants acme and globex:
//                  foreign Origin/Host -> 403, missing/wrong token -> 401,
//                  another tenant's booking and task -> not found, a body over
//                  1 MiB -> 413; after each, nothing changed (both tenants'
//                  bookings, the supplier's audit and request counts)
//
//   node e2e.mjs --phase P --itinera BIN --url http://127.0.0.1:PORT/mcp
//                --supplier http://127.0.0.1:PORT --data-dir DIR [--state FILE]
//
// Prints one "PASS name" or "FAIL name: why" line per test and a summary;
// exits non-zero when any test failed.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { CallToolResultSchema, CreateTaskResultSchema, McpError } from '@modelcontextprotocol/sdk/types.js';

// ------------------------------------------------------------------ arguments

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--') || i + 1 >= argv.length) throw new Error(`bad argument ${a}`);
    out[a.slice(2)] = argv[++i];
  }
  for (const need of ['phase', 'itinera', 'url', 'supplier', 'data-dir']) {
    if (!out[need]) throw new Error(`missing --${need}`);
  }
  return out;
}

const args = parseArgs(process.argv.slice(2));
const MCP_URL = args.url;
const SUPPLIER = args.supplier.replace(/\/$/, '');
const ITINERA = args.itinera;
const DATA_DIR = args['data-dir'];
const STATE = args.state ?? path.join(DATA_DIR, '..', 'e2e-state.json');

// ------------------------------------------------------------------ runner

const results = [];
const only = process.env.E2E_ONLY ? new RegExp(process.env.E2E_ONLY) : null;

async function test(name, fn, { timeoutMs = 120_000 } = {}) {
  if (only && !only.test(name)) return;
  const started = Date.now();
  let timer;
  try {
    await Promise.race([
      fn(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    results.push({ name, ok: true });
    console.log(`PASS ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    results.push({ name, ok: false });
    const why = e instanceof Error ? (e.stack ?? e.message) : String(e);
    console.log(`FAIL ${name} (${Date.now() - started} ms): ${why}`);
  } finally {
    clearTimeout(timer);
  }
}

function finish() {
  const failed = results.filter((r) => !r.ok);
  console.log(`e2e ${args.phase}: ${results.length - failed.length} passed, ${failed.length} failed`);
  for (const f of failed) console.log(`  failed: ${f.name}`);
  // No test at all is a failure, unless E2E_ONLY filtered them all out.
  process.exitCode = failed.length === 0 && (results.length > 0 || only) ? 0 : 1;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls fn until it returns a truthy value or the time is up.
async function until(what, fn, { timeoutMs = 60_000, intervalMs = 200 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() >= deadline) throw new Error(`gave up waiting for ${what} after ${timeoutMs} ms`);
    await sleep(intervalMs);
  }
}

// ------------------------------------------------------------------ clients

const EXPECTED_TOOLS = [
  'book_trip', 'cancel_booking', 'confirm_fare_change', 'get_booking',
  'list_bookings', 'modify_booking', 'search_flights', 'search_hotels',
];

const clientInfo = (name) => ({ name: `itinera-e2e-${name}`, version: '1.0.0' });

async function connectHttp(name, token) {
  const client = new Client(clientInfo(name));
  const opts = token ? { requestInit: { headers: { Authorization: `Bearer ${token}` } } } : {};
  const transport = new StreamableHTTPClientTransport(new URL(MCP_URL), opts);
  await client.connect(transport);
  client.label = `http:${name}`;
  // Ends the session on the server (DELETE /mcp), then the client.
  client.end = async () => {
    try { await transport.terminateSession(); } catch { /* already gone */ }
    await client.close();
  };
  return client;
}

function readDsn() {
  return fs.readFileSync(path.join(DATA_DIR, 'dsn'), 'utf8').trim();
}

// `itinera mcp` on stdio for tenant "dev"; the workflows it starts run on
// dev's workers (same database).
async function connectStdio(name) {
  const transport = new StdioClientTransport({
    command: ITINERA,
    args: ['mcp', '--db', readDsn(), '--tenant', 'dev', '--supplier-url', SUPPLIER],
    stderr: 'pipe',
  });
  // The child's stderr (its logs) must be read, or it blocks when the pipe
  // fills; the tail is shown when a test fails.
  const tail = [];
  transport.stderr.on('data', (chunk) => {
    for (const line of String(chunk).split('\n')) {
      if (!line) continue;
      tail.push(line);
      if (tail.length > 30) tail.shift();
    }
  });
  const client = new Client(clientInfo(name));
  // stdout must carry nothing but protocol: a line that is not a JSON-RPC
  // message is reported here by the SDK.
  // Not counted: the SDK's complaint about the last progress notification,
  // which it dispatches a microtask after the answer that came with it in
  // the same chunk (the server sent it first; see the progress test).
  client.protocolErrors = [];
  client.onerror = (e) => {
    if (!/progress notification for an unknown token/.test(String(e))) client.protocolErrors.push(e);
  };
  try {
    await client.connect(transport);
  } catch (e) {
    throw new Error(`itinera mcp did not initialize: ${e.message}\n${tail.join('\n')}`);
  }
  client.label = `stdio:${name}`;
  client.stderrTail = tail;
  client.end = async () => { await client.close(); };
  return client;
}

const TRANSPORTS = { http: (name) => connectHttp(name), stdio: (name) => connectStdio(name) };

// A client for the body of fn, ended afterwards however fn ends.
async function withClient(connect, name, fn) {
  const client = await connect(name);
  try {
    const result = await fn(client);
    assert.deepEqual((client.protocolErrors ?? []).map(String), [], `${client.label}: errors reading the server's output`);
    return result;
  } catch (e) {
    if (client.stderrTail?.length) e.message += `\n--- ${client.label} stderr (tail) ---\n${client.stderrTail.join('\n')}`;
    throw e;
  } finally {
    await client.end().catch(() => {});
  }
}

// ------------------------------------------------------------------ tool results

// structuredContent, after checking that the text content is the same JSON.
function structured(result, what) {
  assert.ok(result && Array.isArray(result.content), `${what}: no content in ${JSON.stringify(result)}`);
  assert.ok(result.structuredContent, `${what}: no structuredContent in ${JSON.stringify(result)}`);
  const text = result.content.find((c) => c.type === 'text');
  assert.ok(text, `${what}: no text content`);
  assert.deepEqual(JSON.parse(text.text), result.structuredContent, `${what}: text and structuredContent differ`);
  return result.structuredContent;
}

function textOf(result) {
  return (result.content ?? []).filter((c) => c.type === 'text').map((c) => c.text).join('\n');
}

async function call(client, name, args, options) {
  return client.callTool({ name, arguments: args }, CallToolResultSchema, options);
}

// An outcome (book/confirm/get/cancel) that must not be an error.
async function outcome(client, name, args, options) {
  const r = await call(client, name, args, options);
  const o = structured(r, name);
  assert.ok(!r.isError, `${name} answered isError: ${textOf(r)}`);
  return o;
}

async function expectRpcError(promise, code, fieldPattern) {
  try {
    const r = await promise;
    assert.fail(`expected JSON-RPC error ${code}, got a result: ${JSON.stringify(r).slice(0, 500)}`);
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    assert.ok(e instanceof McpError, `expected McpError ${code}, got ${e}`);
    assert.equal(e.code, code, `error code (message: ${e.message})`);
    if (fieldPattern) assert.match(`${e.message} ${JSON.stringify(e.data ?? {})}`, fieldPattern);
    return e;
  }
}

// ------------------------------------------------------------------ supplier

async function supplier(method, p, body) {
  const r = await fetch(`${SUPPLIER}${p}`, {
    method,
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`supplier ${method} ${p}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

// The audit's invariants; open holds and authorizations only when nothing
// is meant to be in flight.
async function assertAuditClean({ settled }) {
  const a = await supplier('GET', '/audit');
  for (const k of ['oversold', 'double_bookings', 'captures_without_ticket', 'tickets_without_capture']) {
    assert.equal(a[k], 0, `supplier audit ${k}: ${JSON.stringify(a)}`);
  }
  if (settled) {
    for (const k of ['open_holds', 'open_authorizations']) {
      assert.equal(a[k], 0, `supplier audit ${k}: ${JSON.stringify(a)}`);
    }
  }
  return a;
}

// A fare jump on one flight and one hotel: the live total is at least 4 x 0.69
// of the quote whatever fare period it is, so the booking must ask.
async function jumpFares(flightId, hotelId) {
  await supplier('PUT', '/admin/faults', { seed: 1, rules: [], fare_jump_percent: { [flightId]: 300, [hotelId]: 300 } });
}

// ------------------------------------------------------------------ booking helpers

// Different trips per test, so that fare jumps and inventory stay apart.
// Dates in 2027: the catalogue is the same every day.
function trip(n) {
  const airports = ['CDG', 'LHR', 'JFK', 'FCO', 'BCN', 'SFO'];
  const cities = { CDG: 'PAR', LHR: 'LON', JFK: 'NYC', FCO: 'ROM', BCN: 'BCN', SFO: 'SFO' };
  const origin = airports[n % 6];
  const destination = airports[(n % 6 + 1 + (Math.floor(n / 6) % 5)) % 6];  // never the origin
  const day = String(1 + (n % 28)).padStart(2, '0');
  const month = String(3 + Math.floor(n / 28)).padStart(2, '0');
  const checkIn = `2027-${month}-${day}`;
  const out = new Date(`${checkIn}T00:00:00Z`);
  out.setUTCDate(out.getUTCDate() + 2);
  return { origin, destination, city: cities[destination], date: checkIn, checkIn, checkOut: out.toISOString().slice(0, 10) };
}

// Searches a trip and returns book_trip arguments from the first offers.
// fare_tolerance_percent 50: fares move by at most 1.3/0.9 (44%) between
// fare periods, so a period ending between search and hold does not ask.
async function quoteTrip(client, n, key, extra = {}) {
  const t = trip(n);
  const f = structured(await call(client, 'search_flights',
    { origin: t.origin, destination: t.destination, date: t.date, passengers: 2 }), 'search_flights');
  const h = structured(await call(client, 'search_hotels',
    { city: t.city, check_in: t.checkIn, check_out: t.checkOut, rooms: 1 }), 'search_hotels');
  assert.ok(f.flights?.length > 0, `no flights ${JSON.stringify(t)}`);
  assert.ok(h.hotels?.length > 0, `no hotels ${JSON.stringify(t)}`);
  const flight = f.flights[0];
  const hotel = h.hotels[0];
  return {
    idempotency_key: key,
    flight_id: flight.flight_id,
    passengers: 2,
    hotel_id: hotel.hotel_id,
    check_in: t.checkIn,
    check_out: t.checkOut,
    rooms: 1,
    card_token: 'tok_visa',
    quote: { fare_cents: flight.fare_cents, hotel_total_cents: hotel.total_cents },
    fare_tolerance_percent: 50,
    travelers: [{ name: 'Ada Lovelace', email: 'ada@example.com' }, { name: 'Charles Babbage' }],
    ...extra,
  };
}

const BOOKING_ID = /^BK-[0-9A-F]{16}$/;

function assertBooked(o, what) {
  assert.equal(o.status, 'booked', `${what}: ${JSON.stringify(o)}`);
  assert.equal(o.done, true, `${what}: done`);
  assert.match(o.booking?.booking_id ?? '', BOOKING_ID, `${what}: booking_id`);
  assert.equal(o.workflow_id, `book/${o.booking.booking_id}`, `${what}: workflow_id`);
  assert.ok(o.booking.flight?.ticket_id, `${what}: no ticket: ${JSON.stringify(o.booking)}`);
  assert.ok(o.booking.hotel?.confirmation_id, `${what}: no hotel confirmation: ${JSON.stringify(o.booking)}`);
  assert.ok(Number(o.booking.paid_cents) > 0, `${what}: nothing paid: ${JSON.stringify(o.booking)}`);
}

// tools/call with `task`: the CreateTaskResult.
async function startTask(client, name, toolArgs) {
  const r = await client.request(
    { method: 'tools/call', params: { name, arguments: toolArgs } },
    CreateTaskResultSchema,
    { task: { ttl: 3_600_000 } },
  );
  assert.ok(r.task?.taskId, `no task in ${JSON.stringify(r)}`);
  assert.ok(['working', 'input_required', 'completed'].includes(r.task.status), `task status ${r.task.status}`);
  return r.task;
}

async function taskResult(client, taskId) {
  const r = await client.experimental.tasks.getTaskResult(taskId, CallToolResultSchema, { timeout: 120_000 });
  assert.equal(r._meta?.['io.modelcontextprotocol/related-task']?.taskId, taskId, `related-task in ${JSON.stringify(r._meta)}`);
  return r;
}

const STAGES = /^(pricing|held flight and hotel|awaiting fare confirmation|fare change accepted|booked|unwinding|canceled|failed)/;

// ------------------------------------------------------------------ phase: main

async function mainPhase() {
  for (const [kind, connect] of Object.entries(TRANSPORTS)) {
    const base = kind === 'http' ? 0 : 10;  // trips 0..9 over HTTP, 10..19 over stdio

    await test(`${kind}: tools/list has the eight tools with schemas and truthful annotations`, () =>
      withClient(connect, 'list', async (c) => {
        const caps = c.getServerCapabilities();
        assert.ok(caps?.tools, `no tools capability: ${JSON.stringify(caps)}`);
        assert.ok(caps?.tasks?.requests?.tools?.call, `no tasks capability for tools/call: ${JSON.stringify(caps)}`);
        const tools = [];
        let cursor;
        do {
          const page = await c.listTools(cursor ? { cursor } : {});
          tools.push(...page.tools);
          cursor = page.nextCursor;
        } while (cursor);
        assert.deepEqual(tools.map((t) => t.name).sort(), EXPECTED_TOOLS);
        const byName = Object.fromEntries(tools.map((t) => [t.name, t]));
        for (const t of tools) {
          assert.equal(t.inputSchema?.type, 'object', `${t.name} inputSchema`);
          assert.equal(t.outputSchema?.type, 'object', `${t.name} outputSchema`);
          assert.ok(t.description, `${t.name} description`);
        }
        for (const n of ['search_flights', 'search_hotels', 'get_booking', 'list_bookings']) {
          assert.equal(byName[n].annotations?.readOnlyHint, true, `${n} readOnlyHint`);
        }
        for (const n of ['book_trip', 'cancel_booking', 'modify_booking', 'confirm_fare_change']) {
          assert.equal(byName[n].annotations?.readOnlyHint, false, `${n} readOnlyHint`);
        }
        assert.equal(byName.cancel_booking.annotations?.destructiveHint, true, 'cancel_booking destructiveHint');
        for (const n of ['book_trip', 'modify_booking', 'cancel_booking']) {
          assert.equal(byName[n].execution?.taskSupport, 'optional', `${n} execution.taskSupport`);
          assert.ok(byName[n].inputSchema.required?.includes('idempotency_key'), `${n} requires idempotency_key`);
        }
        assert.deepEqual(
          [...byName.search_flights.inputSchema.required].sort(), ['date', 'destination', 'origin'],
          'search_flights required');
      }));

    await test(`${kind}: search_flights and search_hotels`, () =>
      withClient(connect, 'search', async (c) => {
        const f = structured(await call(c, 'search_flights',
          { origin: 'CDG', destination: 'FCO', date: '2027-03-01', passengers: 1 }), 'search_flights');
        assert.equal(f.flights.length, 3, JSON.stringify(f));
        for (const o of f.flights) {
          assert.match(o.flight_id, /^IT14[147]-20270301$/);
          assert.equal(o.origin, 'CDG');
          assert.equal(o.destination, 'FCO');
          assert.ok(o.fare_cents >= 7200 && o.fare_cents <= 52000, `fare ${o.fare_cents}`);
        }
        const h = structured(await call(c, 'search_hotels',
          { city: 'ROM', check_in: '2027-03-01', check_out: '2027-03-04', rooms: 1 }), 'search_hotels');
        assert.deepEqual(h.hotels.map((o) => o.hotel_id).sort(), ['HTL-ROM-1', 'HTL-ROM-2', 'HTL-ROM-3']);
        for (const o of h.hotels) assert.equal(o.nights, 3);
        // A bad argument is a JSON-RPC error naming the field.
        await expectRpcError(call(c, 'search_flights', { origin: 'CDG', date: '2027-03-01' }), -32602, /destination/);
      }));

    await test(`${kind}: book, repeat with the same key, get, list, cancel`, () =>
      withClient(connect, 'book', async (c) => {
        const bookArgs = await quoteTrip(c, base + 1, `e2e-${kind}-book-1`);
        const first = await outcome(c, 'book_trip', bookArgs);
        assertBooked(first, 'book_trip');
        const id = first.booking.booking_id;

        const again = await outcome(c, 'book_trip', bookArgs);
        assertBooked(again, 'book_trip again');
        assert.equal(again.booking.booking_id, id, 'same key: same booking');
        assert.equal(again.workflow_id, first.workflow_id, 'same key: same workflow');
        assert.equal(again.booking.flight.ticket_id, first.booking.flight.ticket_id, 'same key: same ticket');
        assert.equal(again.booking.paid_cents, first.booking.paid_cents, 'same key: paid once');

        // The same key for another request is refused and changes nothing.
        await expectRpcError(call(c, 'book_trip', { ...bookArgs, rooms: 2 }), -32602, /idempotency_key/);

        const got = await outcome(c, 'get_booking', { booking_id: id });
        assert.equal(got.status, 'booked');
        assert.deepEqual(got.booking, again.booking, 'get_booking shows the booking book_trip answered');

        const list = structured(await call(c, 'list_bookings', { limit: 100 }), 'list_bookings');
        const listed = list.bookings.find((b) => b.booking_id === id);
        assert.ok(listed, `list_bookings lacks ${id}`);
        assert.match(String(listed.status), /booked/i, `listed status ${listed.status}`);

        // Other hotel dates: bought before the old ones are released.
        const shift = (d) => new Date(Date.parse(`${d}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);
        const modifyArgs = { idempotency_key: `e2e-${kind}-modify-1`, booking_id: id,
          new_check_in: shift(bookArgs.check_in), new_check_out: shift(bookArgs.check_out) };
        const modified = await outcome(c, 'modify_booking', modifyArgs);
        assert.equal(modified.status, 'booked', JSON.stringify(modified));
        assert.equal(modified.done, true);
        assert.equal(modified.workflow_id, `modify/${id}/${modifyArgs.idempotency_key}`);
        assert.equal(modified.booking.hotel.check_in, modifyArgs.new_check_in, JSON.stringify(modified.booking.hotel));
        const modifiedAgain = await outcome(c, 'modify_booking', modifyArgs);
        assert.equal(modifiedAgain.workflow_id, modified.workflow_id, 'same modify key: same workflow');
        assert.equal(modifiedAgain.booking.hotel.confirmation_id, modified.booking.hotel.confirmation_id);
        await assertAuditClean({ settled: true });

        const cancelArgs = { idempotency_key: `e2e-${kind}-cancel-1`, booking_id: id, reason: 'e2e test' };
        const canceled = await outcome(c, 'cancel_booking', cancelArgs);
        assert.equal(canceled.status, 'canceled', JSON.stringify(canceled));
        assert.equal(canceled.done, true);
        assert.equal(canceled.workflow_id, `cancel/${id}`);
        assert.equal(Number(canceled.booking.paid_cents ?? 0), 0, `refunded: ${JSON.stringify(canceled.booking)}`);

        const cancelAgain = await outcome(c, 'cancel_booking', cancelArgs);
        assert.equal(cancelAgain.status, 'canceled');
        assert.equal(cancelAgain.workflow_id, canceled.workflow_id, 'same cancel key: same workflow');

        const after = await outcome(c, 'get_booking', { booking_id: id });
        assert.equal(after.status, 'canceled');

        const missing = await call(c, 'get_booking', { booking_id: 'BK-0000000000000000' });
        assert.equal(missing.isError, true, 'unknown booking is an isError result');
        assert.match(textOf(missing), /No booking/);
        await assertAuditClean({ settled: true });
      }));

    await test(`${kind}: book_trip with a progressToken gets progress naming saga stages`, () =>
      withClient(connect, 'progress', async (c) => {
        const bookArgs = await quoteTrip(c, base + 2, `e2e-${kind}-progress-1`);
        // Slow holds and payments keep each stage in view for several of the
        // server's polls (150 ms), so that progress cannot skip to the end.
        // (The SDK hands notifications to their handler a microtask late, so
        // a progress notification read in the same chunk as the answer is
        // dropped: the last one, "booked", often is over stdio.)
        const slow = (endpoint) => ({ endpoint, latency_ms: 400 });
        await supplier('PUT', '/admin/faults', {
          seed: 1, rules: [slow('POST /hotels/holds'), slow('POST /payments/authorizations')] });
        const progress = [];
        let o;
        try {
          o = await outcome(c, 'book_trip', bookArgs, { onprogress: (p) => progress.push(p) });
        } finally {
          await supplier('DELETE', '/admin/faults');
        }
        assertBooked(o, 'book_trip');
        const stages = new Set(progress.map((p) => p.message));
        assert.ok(stages.size >= 2, `progress names at least two stages: ${JSON.stringify(progress)}`);
        for (const p of progress) {
          assert.match(p.message ?? '', STAGES, `progress message ${JSON.stringify(p)}`);
        }
        for (let i = 1; i < progress.length; i++) {
          assert.ok(progress[i].progress > progress[i - 1].progress, `progress increases: ${JSON.stringify(progress)}`);
        }
        console.log(`  ${kind}: progress messages: ${progress.map((p) => JSON.stringify(p.message)).join(', ')}`);
      }));

    await test(`${kind}: a fare change is confirmed through confirm_fare_change`, () =>
      withClient(connect, 'fare', async (c) => {
        const bookArgs = await quoteTrip(c, base + 3, `e2e-${kind}-fare-1`, { fare_tolerance_percent: 0 });
        await jumpFares(bookArgs.flight_id, bookArgs.hotel_id);
        try {
          const r = await call(c, 'book_trip', bookArgs);
          const o = structured(r, 'book_trip');
          assert.equal(r.isError, true, `awaiting confirmation is an isError result: ${JSON.stringify(o)}`);
          assert.equal(o.status, 'awaiting_fare_confirmation', JSON.stringify(o));
          assert.equal(o.done, false);
          assert.match(o.next_step, /confirm_fare_change/);
          const id = o.booking.booking_id;
          const pending = Number(o.booking.pending_total_cents);
          assert.ok(pending > Number(o.booking.quoted_total_cents), `pending ${pending} > quoted ${o.booking.quoted_total_cents}`);

          const got = await outcome(c, 'get_booking', { booking_id: id });
          assert.equal(got.status, 'awaiting_fare_confirmation');

          const confirmed = await outcome(c, 'confirm_fare_change', { booking_id: id, accept: true, note: 'e2e: fine' });
          assertBooked(confirmed, 'confirm_fare_change');
          assert.equal(Number(confirmed.booking.paid_cents), pending, 'paid the confirmed total');
          assert.equal(confirmed.workflow_id, o.workflow_id);

          // Confirming again: nothing is waiting any more.
          const late = await call(c, 'confirm_fare_change', { booking_id: id, accept: true });
          assert.equal(late.isError, true, 'a second confirmation is an isError result');
        } finally {
          await supplier('DELETE', '/admin/faults');
        }
        await assertAuditClean({ settled: true });
      }));

    await test(`${kind}: task-augmented book_trip (callToolStream: taskCreated, status, result)`, () =>
      withClient(connect, 'task-stream', async (c) => {
        const bookArgs = await quoteTrip(c, base + 4, `e2e-${kind}-task-1`);
        const seen = [];
        let result;
        let created;
        for await (const m of c.experimental.tasks.callToolStream(
          { name: 'book_trip', arguments: bookArgs }, CallToolResultSchema, { task: { ttl: 3_600_000 } })) {
          seen.push(m.type);
          if (m.type === 'taskCreated') created = m.task;
          if (m.type === 'result') result = m.result;
          if (m.type === 'error') throw m.error;
        }
        assert.equal(seen[0], 'taskCreated', `stream: ${seen.join(',')}`);
        assert.ok(result, `no result in stream: ${seen.join(',')}`);
        const o = structured(result, 'tasks/result');
        assertBooked(o, 'task result');
        assert.equal(created.taskId, o.workflow_id, 'the task id is the workflow id');
        const t = await c.experimental.tasks.getTask(created.taskId);
        assert.equal(t.status, 'completed');
        const listed = await c.experimental.tasks.listTasks();
        assert.ok(listed.tasks.some((x) => x.taskId === created.taskId), 'tasks/list has the task');
      }));

    await test(`${kind}: tasks/result from a new client after the first disconnected`, async () => {
      const task = await withClient(connect, 'task-a', async (c) => {
        const bookArgs = await quoteTrip(c, base + 5, `e2e-${kind}-task-2`);
        return startTask(c, 'book_trip', bookArgs);
        // withClient ends the client here: DELETE of the HTTP session, or the stdio process exits.
      });
      await withClient(connect, 'task-b', async (c) => {
        const t = await c.experimental.tasks.getTask(task.taskId);
        assert.equal(t.taskId, task.taskId);
        assert.ok(['working', 'completed'].includes(t.status), `status ${t.status}`);
        const o = structured(await taskResult(c, task.taskId), 'tasks/result');
        assertBooked(o, 'tasks/result');
        assert.equal(o.workflow_id, task.taskId);
        assert.equal((await c.experimental.tasks.getTask(task.taskId)).status, 'completed');

        // A task-augmented cancellation, read the same way.
        const id = o.booking.booking_id;
        const cancelTask = await startTask(c, 'cancel_booking', { idempotency_key: `e2e-${kind}-task-2-cancel`, booking_id: id });
        assert.equal(cancelTask.taskId, `cancel/${id}`);
        const canceled = structured(await taskResult(c, cancelTask.taskId), 'tasks/result of cancel_booking');
        assert.equal(canceled.status, 'canceled', JSON.stringify(canceled));
      });
    });
  }

  await test('cross-transport: a booking made over stdio is read over HTTP, and the reverse', async () => {
    const viaStdio = await withClient(connectStdio, 'cross-a', async (c) =>
      startTask(c, 'book_trip', await quoteTrip(c, 20, 'e2e-cross-1')));
    await withClient(connectHttp, 'cross-b', async (c) => {
      const o = structured(await taskResult(c, viaStdio.taskId), 'tasks/result');
      assertBooked(o, 'stdio task read over HTTP');
    });
    const viaHttp = await withClient(connectHttp, 'cross-c', async (c) =>
      outcome(c, 'book_trip', await quoteTrip(c, 21, 'e2e-cross-2')));
    await withClient(connectStdio, 'cross-d', async (c) => {
      const o = await outcome(c, 'get_booking', { booking_id: viaHttp.booking.booking_id });
      assert.equal(o.status, 'booked');
    });
    await assertAuditClean({ settled: true });
  });

  // Tasks for after-restart: one that waits for a fare confirmation when
  // the server is killed (its holds keep the new price), one plain booking
  // over stdio.
  await test('restart: start tasks that must survive SIGKILL of the server', async () => {
    const state = {};
    state.awaiting = await withClient(connectHttp, 'restart-a', async (c) => {
      const bookArgs = await quoteTrip(c, 22, 'e2e-restart-fare', { fare_tolerance_percent: 0 });
      await jumpFares(bookArgs.flight_id, bookArgs.hotel_id);
      try {
        const task = await startTask(c, 'book_trip', bookArgs);
        const t = await until('the task to await the fare confirmation', async () => {
          const s = await c.experimental.tasks.getTask(task.taskId);
          assert.ok(['working', 'input_required'].includes(s.status), `task status ${JSON.stringify(s)}`);
          return s.status === 'input_required' ? s : null;
        });
        assert.match(t.statusMessage ?? '', /confirm_fare_change/);
        return { taskId: task.taskId, bookingId: task.taskId.replace(/^book\//, '') };
      } finally {
        await supplier('DELETE', '/admin/faults');
      }
    });
    state.plain = await withClient(connectStdio, 'restart-b', async (c) => {
      const task = await startTask(c, 'book_trip', await quoteTrip(c, 23, 'e2e-restart-plain'));
      return { taskId: task.taskId };
    });
    fs.writeFileSync(STATE, JSON.stringify(state, null, 2));
  });
}

// ------------------------------------------------------------------ phase: after-restart

async function afterRestartPhase() {
  const state = JSON.parse(fs.readFileSync(STATE, 'utf8'));

  await test('restart: a task awaiting a fare confirmation at SIGKILL is confirmed and read with tasks/result', () =>
    withClient(connectHttp, 'after-restart-a', async (c) => {
      const { taskId, bookingId } = state.awaiting;
      const t = await c.experimental.tasks.getTask(taskId);
      assert.equal(t.status, 'input_required', `after the restart: ${JSON.stringify(t)}`);
      const got = await outcome(c, 'get_booking', { booking_id: bookingId });
      assert.equal(got.status, 'awaiting_fare_confirmation');
      const confirmed = await outcome(c, 'confirm_fare_change', { booking_id: bookingId, accept: true });
      assertBooked(confirmed, 'confirm_fare_change after the restart');
      const o = structured(await taskResult(c, taskId), 'tasks/result');
      assertBooked(o, 'tasks/result after the restart');
      assert.equal(o.booking.paid_cents, confirmed.booking.paid_cents);
    }));

  await test('restart: a task started over stdio before SIGKILL is read with tasks/result from a new stdio client', () =>
    withClient(connectStdio, 'after-restart-b', async (c) => {
      const { taskId } = state.plain;
      const o = structured(await taskResult(c, taskId), 'tasks/result');
      assertBooked(o, 'tasks/result after the restart');
      assert.equal((await c.experimental.tasks.getTask(taskId)).status, 'completed');
    }));

  await test('restart: the supplier audit is clean (no open holds, no double bookings)', async () => {
    await until('no open holds or authorizations', async () => {
      const a = await supplier('GET', '/audit');
      return a.open_holds === 0 && a.open_authorizations === 0;
    }, { timeoutMs: 30_000 });
    await assertAuditClean({ settled: true });
  });
}

// ------------------------------------------------------------------ phase: security

// One raw HTTP request to /mcp (node:http, so Host and Origin can be set and
// a 413 read even when the server stops reading the body).
function raw({ method = 'POST', headers = {}, body, url = MCP_URL }) {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: u.hostname, port: u.port, path: u.pathname, method, agent: false,
      headers: {
        Accept: 'application/json, text/event-stream',
        ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
        ...headers,
      },
    }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    // The server may answer (413) and close before it read the whole body.
    req.on('error', (e) => (['EPIPE', 'ECONNRESET'].includes(e.code) ? null : reject(e)));
    if (body !== undefined) req.write(typeof body === 'string' ? body : JSON.stringify(body));
    req.end();
  });
}

const PROTOCOL = '2025-11-25';

// A session made by hand: initialize, then notifications/initialized.
async function rawSession(token) {
  const init = await raw({
    headers: { Authorization: `Bearer ${token}` },
    body: { jsonrpc: '2.0', id: 1, method: 'initialize',
      params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: clientInfo('raw') } },
  });
  assert.equal(init.status, 200, `initialize: ${init.status} ${init.body}`);
  const sid = init.headers['mcp-session-id'];
  assert.ok(sid, 'no Mcp-Session-Id');
  const headers = { Authorization: `Bearer ${token}`, 'Mcp-Session-Id': sid, 'MCP-Protocol-Version': PROTOCOL };
  const ack = await raw({ headers, body: { jsonrpc: '2.0', method: 'notifications/initialized' } });
  assert.equal(ack.status, 202, `notifications/initialized: ${ack.status} ${ack.body}`);
  return { sid, headers };
}

// The JSON-RPC answer in a JSON or SSE response body.
function rpcAnswer(res) {
  if ((res.headers['content-type'] ?? '').startsWith('text/event-stream')) {
    const datas = res.body.split('\n').filter((l) => l.startsWith('data:') && l.slice(5).trim() !== '')
      .map((l) => JSON.parse(l.slice(5)));
    return datas.find((m) => 'result' in m || 'error' in m);
  }
  return JSON.parse(res.body);
}

async function securityPhase() {
  const TOKENS = { acme: 'tokA-acme-e2e-0001', globex: 'tokB-globex-e2e-0002' };
  const acme = await connectHttp('acme', TOKENS.acme);
  const globex = await connectHttp('globex', TOKENS.globex);
  try {
    // Both tenants book with the same idempotency key: two bookings.
    let acmeBooking;
    let globexBooking;
    await test('security: two tenants book with the same idempotency key and get two bookings', async () => {
      acmeBooking = await outcome(acme, 'book_trip', await quoteTrip(acme, 30, 'shared-key-1'));
      assertBooked(acmeBooking, 'acme');
      globexBooking = await outcome(globex, 'book_trip', await quoteTrip(globex, 31, 'shared-key-1'));
      assertBooked(globexBooking, 'globex');
      assert.notEqual(acmeBooking.booking.booking_id, globexBooking.booking.booking_id);
    });
    if (!acmeBooking || !globexBooking) return;
    const A = acmeBooking.booking.booking_id;

    // What must not change: both tenants' bookings, the supplier's books and
    // the requests it served.
    const snapshot = async () => {
      const list = async (c) =>
        structured(await call(c, 'list_bookings', { limit: 100 }), 'list_bookings').bookings
          .map((b) => ({ id: b.booking_id, status: b.status, paid: b.paid_cents, updated: b.updated_at_us, wf: b.workflow_id }));
      // Requests served, but not this snapshot's own reads.
      const { requests } = await supplier('GET', '/admin/stats');
      for (const k of Object.keys(requests)) if (/^GET \/(audit|admin)/.test(k)) delete requests[k];
      return { acme: await list(acme), globex: await list(globex), audit: await supplier('GET', '/audit'), requests };
    };
    const before = await snapshot();
    assert.deepEqual(before.acme.map((b) => b.id), [A]);
    assert.deepEqual(before.globex.map((b) => b.id), [globexBooking.booking.booking_id]);
    const unchanged = async (what) => assert.deepEqual(await snapshot(), before, `${what} changed something`);

    const session = await rawSession(TOKENS.acme);
    const cancelCall = (id) => ({ jsonrpc: '2.0', id, method: 'tools/call',
      params: { name: 'cancel_booking', arguments: { idempotency_key: `attack-${id}`, booking_id: A } } });

    await test('security: a raw session works (control for the requests below)', async () => {
      const r = await raw({ headers: session.headers, body: { jsonrpc: '2.0', id: 2, method: 'ping' } });
      assert.equal(r.status, 200, r.body);
      assert.deepEqual(rpcAnswer(r).result, {});
    });

    await test('security: a foreign Origin gets 403 and changes nothing', async () => {
      for (const origin of ['http://evil.example', 'https://attacker.test:8443', 'null']) {
        const r = await raw({ headers: { ...session.headers, Origin: origin }, body: cancelCall(10) });
        assert.equal(r.status, 403, `Origin ${origin}: ${r.status} ${r.body}`);
        const init = await raw({
          headers: { Authorization: `Bearer ${TOKENS.acme}`, Origin: origin },
          body: { jsonrpc: '2.0', id: 1, method: 'initialize',
            params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: clientInfo('evil') } },
        });
        assert.equal(init.status, 403, `initialize with Origin ${origin}: ${init.status}`);
        assert.equal(init.headers['mcp-session-id'], undefined, 'no session for a foreign origin');
      }
      // A loopback origin is fine (control).
      const ok = await raw({ headers: { ...session.headers, Origin: `http://127.0.0.1:${new URL(MCP_URL).port}` },
        body: { jsonrpc: '2.0', id: 3, method: 'ping' } });
      assert.equal(ok.status, 200, `loopback Origin: ${ok.status} ${ok.body}`);
      await unchanged('a foreign Origin');
    });

    await test('security: a foreign Host gets 403 and changes nothing', async () => {
      const r = await raw({ headers: { ...session.headers, Host: `evil.example:${new URL(MCP_URL).port}` }, body: cancelCall(11) });
      assert.equal(r.status, 403, `${r.status} ${r.body}`);
      await unchanged('a foreign Host');
    });

    await test('security: no token gets 401 with WWW-Authenticate and changes nothing', async () => {
      const { Authorization, ...noAuth } = session.headers;
      const r = await raw({ headers: noAuth, body: cancelCall(12) });
      assert.equal(r.status, 401, `${r.status} ${r.body}`);
      assert.match(r.headers['www-authenticate'] ?? '', /^Bearer\b/i, `WWW-Authenticate: ${r.headers['www-authenticate']}`);
      const init = await raw({ body: { jsonrpc: '2.0', id: 1, method: 'initialize',
        params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: clientInfo('anon') } } });
      assert.equal(init.status, 401, `initialize without a token: ${init.status}`);
      assert.match(init.headers['www-authenticate'] ?? '', /^Bearer\b/i);
      await unchanged('a request without a token');
    });

    await test('security: a wrong token gets 401 and changes nothing', async () => {
      for (const auth of ['Bearer tokX-not-a-token-0001', 'Bearer tokA-acme-e2e-0002', 'Bearer tokA-acme-e2e-000', 'Bearer tokA-acme-e2e-00011', 'Basic dG9rQTp4', 'Bearer ']) {
        const r = await raw({ headers: { ...session.headers, Authorization: auth }, body: cancelCall(13) });
        assert.equal(r.status, 401, `Authorization "${auth}": ${r.status} ${r.body}`);
        assert.match(r.headers['www-authenticate'] ?? '', /^Bearer\b/i, `WWW-Authenticate for "${auth}"`);
      }
      // The SDK client with a wrong token cannot connect at all.
      await assert.rejects(connectHttp('wrong', 'not-a-token'), /401|nauthorized/i);
      await unchanged('a wrong token');
    });

    await test("security: another tenant's booking and task are not found, and stay untouched", async () => {
      const got = await call(globex, 'get_booking', { booking_id: A });
      assert.equal(got.isError, true, `globex get_booking ${A}: ${textOf(got)}`);
      assert.match(textOf(got), /No booking/);
      const missing = await call(globex, 'get_booking', { booking_id: 'BK-0123456789ABCDEF' });
      assert.equal(textOf(got), textOf(missing).replaceAll('BK-0123456789ABCDEF', A), 'indistinguishable from a missing booking');

      const cancel = await call(globex, 'cancel_booking', { idempotency_key: 'attack-cancel', booking_id: A });
      assert.equal(cancel.isError, true, `globex cancel_booking ${A}: ${textOf(cancel)}`);
      assert.match(textOf(cancel), /No booking/);
      const confirm = await call(globex, 'confirm_fare_change', { booking_id: A, accept: false });
      assert.equal(confirm.isError, true);
      assert.match(textOf(confirm), /No booking/);
      const modify = await call(globex, 'modify_booking', { idempotency_key: 'attack-modify', booking_id: A,
        new_check_in: '2027-06-01', new_check_out: '2027-06-03' });
      assert.equal(modify.isError, true);
      assert.match(textOf(modify), /No booking/);

      await expectRpcError(globex.experimental.tasks.getTask(`book/${A}`), -32602, /taskId/);
      await expectRpcError(globex.experimental.tasks.getTaskResult(`book/${A}`, CallToolResultSchema), -32602, /taskId/);
      await expectRpcError(globex.experimental.tasks.cancelTask(`book/${A}`), -32602, /taskId/);
      const tasks = await globex.experimental.tasks.listTasks();
      assert.ok(!tasks.tasks.some((t) => t.taskId === `book/${A}`), 'tasks/list shows no foreign task');

      // acme's session id with globex's token is not acme's session.
      const r = await raw({ headers: { ...session.headers, Authorization: `Bearer ${TOKENS.globex}` }, body: cancelCall(14) });
      assert.equal(r.status, 404, `acme's session with globex's token: ${r.status} ${r.body}`);
      await unchanged("another tenant's calls");
    });

    await test('security: a body over 1 MiB gets 413 and changes nothing', async () => {
      const big = cancelCall(15);
      big.params.arguments.reason = 'x'.repeat(300);
      big.params._meta = { padding: 'y'.repeat(1024 * 1024 + 100) };
      const r = await raw({ headers: session.headers, body: big });
      assert.equal(r.status, 413, `${r.status} ${r.body.slice(0, 300)}`);
      // The session still works afterwards.
      const ping = await raw({ headers: session.headers, body: { jsonrpc: '2.0', id: 16, method: 'ping' } });
      assert.equal(ping.status, 200, `ping after 413: ${ping.status}`);
      await unchanged('an oversized body');
    });

    await test('security: the owner can still cancel its booking (control)', async () => {
      const o = await outcome(acme, 'cancel_booking', { idempotency_key: 'acme-cancel-1', booking_id: A });
      assert.equal(o.status, 'canceled');
      const g = await outcome(globex, 'get_booking', { booking_id: globexBooking.booking.booking_id });
      assert.equal(g.status, 'booked', "globex's booking is untouched");
      await assertAuditClean({ settled: true });
    });

    await test('security: a deleted session gets 404', async () => {
      const del = await raw({ method: 'DELETE', headers: session.headers });
      assert.ok([200, 202, 204].includes(del.status), `DELETE: ${del.status} ${del.body}`);
      const r = await raw({ headers: session.headers, body: { jsonrpc: '2.0', id: 17, method: 'ping' } });
      assert.equal(r.status, 404, `ping on a deleted session: ${r.status} ${r.body}`);
    });
  } finally {
    await acme.end().catch(() => {});
    await globex.end().catch(() => {});
  }
}

// ------------------------------------------------------------------ main

const phases = { main: mainPhase, 'after-restart': afterRestartPhase, security: securityPhase };
if (!phases[args.phase]) throw new Error(`unknown phase ${args.phase}`);
try {
  await phases[args.phase]();
} catch (e) {
  results.push({ name: `${args.phase} (uncaught)`, ok: false });
  console.log(`FAIL ${args.phase}: ${e.stack ?? e}`);
}
finish();
// Whatever a timed-out test left open (a client, a child process) must not
// keep the process alive.
process.exit(process.exitCode);
