// Booking agents for tests/outage_test.cc: N clients of the official MCP
// TypeScript SDK (Streamable HTTP) book trips against `itinera serve` in a
// loop (book_trip, then get_booking, and list_bookings every third time)
// until the --stop file appears, while the test crashes the database under
// them. An agent that gets the retryable tool error (isError with
// _meta["itinera/retryAfterSeconds"]) waits that long and repeats the same
// call with the same arguments, as the error tells it to.
//
// Every call attempt is one JSON line in --out, written when it ends:
//   {"agent", "seq", "tool", "key", "attempt", "start", "end",   (epoch ms)
//    "outcome": "ok" | "tool_error" | "unavailable" | "rpc_error" | "transport_error",
//    "code"?, "message"?, "booking_id"?, "status"?, "done"?}
// The test orders its steps by these lines and checks them at the end.
//
//   node outage_agents.mjs --url http://127.0.0.1:PORT/mcp --agents 40 --out FILE --stop FILE
import fs from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CallToolResultSchema, McpError } from '@modelcontextprotocol/sdk/types.js';

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || i + 1 >= argv.length) throw new Error(`bad argument ${argv[i]}`);
    out[argv[i].slice(2)] = argv[i + 1];
  }
  for (const need of ['url', 'agents', 'out', 'stop']) {
    if (!out[need]) throw new Error(`missing --${need}`);
  }
  return out;
}

const args = parseArgs(process.argv.slice(2));
const AGENTS = Number(args.agents);
const out = fs.openSync(args.out, 'a');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const stopped = () => fs.existsSync(args.stop);

function record(line) {
  fs.writeSync(out, `${JSON.stringify(line)}\n`);
}

// Agent n's trip: its own day and route, so agents do not compete for rooms.
function trip(n) {
  const airports = ['CDG', 'LHR', 'JFK', 'FCO', 'BCN', 'SFO'];
  const cities = { CDG: 'PAR', LHR: 'LON', JFK: 'NYC', FCO: 'ROM', BCN: 'BCN', SFO: 'SFO' };
  const origin = airports[n % 6];
  const destination = airports[(n % 6 + 1 + (Math.floor(n / 6) % 5)) % 6];
  const day = String(1 + (n % 28)).padStart(2, '0');
  const month = String(3 + Math.floor(n / 28)).padStart(2, '0');
  const checkIn = `2027-${month}-${day}`;
  const back = new Date(`${checkIn}T00:00:00Z`);
  back.setUTCDate(back.getUTCDate() + 2);
  return { origin, destination, city: cities[destination], date: checkIn, checkIn, checkOut: back.toISOString().slice(0, 10) };
}

function textOf(result) {
  return (result.content ?? []).filter((c) => c.type === 'text').map((c) => c.text).join('\n');
}

class Agent {
  constructor(n) {
    this.n = n;
    this.seq = 0;
  }

  async connect() {
    this.client = new Client({ name: `itinera-outage-agent-${this.n}`, version: '1.0.0' });
    this.transport = new StreamableHTTPClientTransport(new URL(args.url));
    await this.client.connect(this.transport);
  }

  // One call, repeated with the same arguments while the answer is the
  // retryable tool error; every attempt is recorded. Returns the last result
  // (undefined when it ended in a protocol or transport error).
  async call(tool, toolArgs) {
    const seq = ++this.seq;
    for (let attempt = 1; ; attempt++) {
      const line = { agent: this.n, seq, tool, key: toolArgs.idempotency_key ?? null, attempt, start: Date.now() };
      let result;
      try {
        result = await this.client.callTool({ name: tool, arguments: toolArgs }, CallToolResultSchema, { timeout: 120_000 });
      } catch (e) {
        line.end = Date.now();
        line.outcome = e instanceof McpError ? 'rpc_error' : 'transport_error';
        if (e instanceof McpError) line.code = e.code;
        line.message = String(e.message ?? e).slice(0, 500);
        record(line);
        return undefined;
      }
      line.end = Date.now();
      const retryAfter = result._meta?.['itinera/retryAfterSeconds'];
      if (result.isError && retryAfter !== undefined) {
        line.outcome = 'unavailable';
        line.message = textOf(result).slice(0, 300);
        record(line);
        if (stopped()) return undefined;
        await sleep(Number(retryAfter) * 1000);
        continue;
      }
      line.outcome = result.isError ? 'tool_error' : 'ok';
      const s = result.structuredContent;
      if (s?.booking?.booking_id) line.booking_id = s.booking.booking_id;
      else if (typeof s?.workflow_id === 'string' && s.workflow_id.startsWith('book/')) line.booking_id = s.workflow_id.slice(5);
      if (s?.status) line.status = s.status;
      if (s?.done !== undefined) line.done = s.done;
      if (result.isError) line.message = textOf(result).slice(0, 300);
      record(line);
      return result;
    }
  }

  // Searches once: flights and hotels for this agent's trip, rotated over
  // by the bookings so that none sells out. A search the supplier could not
  // serve (forty agents at once fill its bulkhead) is tried again, as its
  // answer says.
  async search(tool, toolArgs, field) {
    for (let attempt = 1; attempt <= 20; attempt++) {
      const r = await this.call(tool, toolArgs);
      const offers = r?.structuredContent?.[field] ?? [];
      if (!r?.isError && offers.length) return offers;
      await sleep(250 * attempt);
    }
    throw new Error(`agent ${this.n}: no offers from ${tool} ${JSON.stringify(toolArgs)}`);
  }

  async quote() {
    const t = trip(this.n);
    const flights = await this.search('search_flights', { origin: t.origin, destination: t.destination, date: t.date, passengers: 1 }, 'flights');
    const hotels = await this.search('search_hotels', { city: t.city, check_in: t.checkIn, check_out: t.checkOut, rooms: 1 }, 'hotels');
    this.trip = t;
    this.offers = [];
    for (const fl of flights) for (const ho of hotels) this.offers.push({ fl, ho });
  }

  async run() {
    await this.connect();
    await this.quote();
    for (let k = 0; !stopped(); k++) {
      const { fl, ho } = this.offers[k % this.offers.length];
      const key = `outage-agent-${this.n}-${k}`;
      const booked = await this.call('book_trip', {
        idempotency_key: key,
        flight_id: fl.flight_id,
        passengers: 1,
        hotel_id: ho.hotel_id,
        check_in: this.trip.checkIn,
        check_out: this.trip.checkOut,
        rooms: 1,
        card_token: 'tok_visa',
        quote: { fare_cents: fl.fare_cents, hotel_total_cents: ho.total_cents },
        fare_tolerance_percent: 50,
        travelers: [{ name: `Agent ${this.n}`, email: `agent${this.n}@example.com` }],
      });
      const s = booked?.structuredContent;
      const bookingId = s?.booking?.booking_id ?? (s?.workflow_id?.startsWith('book/') ? s.workflow_id.slice(5) : null);
      if (bookingId && !stopped()) await this.call('get_booking', { booking_id: bookingId });
      if (k % 3 === 2 && !stopped()) await this.call('list_bookings', { limit: 5 });
    }
    try { await this.transport.terminateSession(); } catch { /* the session may be gone */ }
    await this.client.close();
  }
}

const agents = Array.from({ length: AGENTS }, (_, n) => new Agent(n));
const results = await Promise.allSettled(agents.map((a) => a.run()));
fs.closeSync(out);
const failed = results.filter((r) => r.status === 'rejected');
for (const f of failed) console.error(`agent failed: ${f.reason?.stack ?? f.reason}`);
process.exitCode = failed.length ? 1 : 0;
