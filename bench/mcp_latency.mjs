// The client of bench/mcp_latency.sh: tools/call latency of get_booking and
// search_flights over Streamable HTTP, against `ping` over the same session
// as the baseline (the cost of HTTP, the session and JSON-RPC with no tool
// behind it). One MCP session, one keep-alive TCP connection, one request at
// a time; the connection count is checked, not assumed.
//
//   node mcp_latency.mjs --url http://127.0.0.1:PORT/mcp --supplier http://127.0.0.1:PORT
//                        [--n 500] [--warmup 50] [--token TOKEN]
//
// Prints a table and, last, one JSON line with every figure.
import assert from 'node:assert/strict';
import http from 'node:http';

function parseArgs(argv) {
  const out = { n: '500', warmup: '50' };
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || i + 1 >= argv.length) throw new Error(`bad argument ${argv[i]}`);
    out[argv[i].slice(2)] = argv[i + 1];
  }
  if (!out.url || !out.supplier) throw new Error('need --url and --supplier');
  return out;
}

const args = parseArgs(process.argv.slice(2));
const N = Number(args.n);
const WARMUP = Number(args.warmup);
const url = new URL(args.url);
const PROTOCOL = '2025-11-25';

// One socket for the whole run: requests queue behind each other on it.
const agent = new http.Agent({ keepAlive: true, maxSockets: 1, maxFreeSockets: 1 });
const sockets = new Set();
let sessionHeaders = {};
let nextId = 1;
let closes = 0;  // responses that ended their connection (Connection: close)

function post(message) {
  const body = JSON.stringify(message);
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: url.hostname, port: url.port, path: url.pathname, method: 'POST', agent,
      headers: {
        'Content-Type': 'application/json',
        Accept: 'application/json, text/event-stream',
        'Content-Length': Buffer.byteLength(body),
        ...sessionHeaders,
      },
    }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      if ((res.headers.connection ?? '').toLowerCase() === 'close') closes++;
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('socket', (s) => sockets.add(s));
    req.on('error', reject);
    req.end(body);
  });
}

// The JSON-RPC answer of a request, from a JSON or an SSE body.
async function rpc(method, params) {
  const id = nextId++;
  const res = await post({ jsonrpc: '2.0', id, method, params });
  if (res.status !== 200) throw new Error(`${method}: HTTP ${res.status} ${res.body.slice(0, 300)}`);
  let answer;
  if ((res.headers['content-type'] ?? '').startsWith('text/event-stream')) {
    for (const line of res.body.split('\n')) {
      // Events carry one JSON message each; an event with empty data (the
      // priming event, for resumption) carries none.
      if (!line.startsWith('data:') || line.slice(5).trim() === '') continue;
      const m = JSON.parse(line.slice(5));
      if (m.id === id) answer = m;
    }
  } else {
    answer = JSON.parse(res.body);
  }
  if (!answer) throw new Error(`${method}: no answer in ${res.body.slice(0, 300)}`);
  if (answer.error) throw new Error(`${method}: ${JSON.stringify(answer.error)}`);
  return answer.result;
}

async function callTool(name, toolArgs) {
  const r = await rpc('tools/call', { name, arguments: toolArgs });
  if (r.isError) throw new Error(`${name}: ${JSON.stringify(r.content)}`);
  return r.structuredContent;
}

function stats(samplesMs) {
  const s = [...samplesMs].sort((a, b) => a - b);
  const pct = (p) => s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return { n: s.length, p50: pct(50), p90: pct(90), p99: pct(99), mean, max: s[s.length - 1] };
}

async function measure(label, fn) {
  for (let i = 0; i < WARMUP; i++) await fn(i);
  const [sockets0, closes0] = [sockets.size, closes];
  const samples = [];
  for (let i = 0; i < N; i++) {
    const t0 = process.hrtime.bigint();
    await fn(i);
    samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  // New TCP connections opened during the measured calls.
  return { label, ...stats(samples), new_connections: sockets.size - sockets0, connection_close: closes - closes0 };
}

// ------------------------------------------------------------------ session

if (args.token) sessionHeaders.Authorization = `Bearer ${args.token}`;
{
  const res = await post({ jsonrpc: '2.0', id: nextId++, method: 'initialize',
    params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: 'itinera-mcp-latency', version: '1' } } });
  assert.equal(res.status, 200, `initialize: ${res.status} ${res.body}`);
  const sid = res.headers['mcp-session-id'];
  assert.ok(sid, 'no Mcp-Session-Id');
  sessionHeaders = { ...sessionHeaders, 'Mcp-Session-Id': sid, 'MCP-Protocol-Version': PROTOCOL };
  const ack = await post({ jsonrpc: '2.0', method: 'notifications/initialized' });
  assert.equal(ack.status, 202, `notifications/initialized: ${ack.status}`);
}

// ------------------------------------------------------------------ one booking

const search = { origin: 'CDG', destination: 'FCO', date: '2027-03-01', passengers: 1 };
const flights = await callTool('search_flights', search);
const hotels = await callTool('search_hotels', { city: 'ROM', check_in: '2027-03-01', check_out: '2027-03-04', rooms: 1 });
const flight = flights.flights[0];
const hotel = hotels.hotels[0];
const booked = await callTool('book_trip', {
  idempotency_key: 'bench-mcp-latency-1', flight_id: flight.flight_id, passengers: 1, hotel_id: hotel.hotel_id,
  check_in: '2027-03-01', check_out: '2027-03-04', rooms: 1, card_token: 'tok_visa',
  quote: { fare_cents: flight.fare_cents, hotel_total_cents: hotel.total_cents }, fare_tolerance_percent: 50,
});
assert.equal(booked.status, 'booked', JSON.stringify(booked));
const bookingId = booked.booking.booking_id;

// ------------------------------------------------------------------ measurements

const ping = await measure('ping', () => rpc('ping', {}));
const get = await measure('get_booking', async () => {
  const o = await callTool('get_booking', { booking_id: bookingId });
  if (o.status !== 'booked') throw new Error(`get_booking: ${o.status}`);
});
const searchFlights = await measure('search_flights', async () => {
  const o = await callTool('search_flights', search);
  if (o.flights.length !== 3) throw new Error('search_flights: not 3 flights');
});

const fmt = (x) => x.toFixed(3).padStart(9);
console.log(`MCP tools/call latency over Streamable HTTP: ${N} sequential calls each after ${WARMUP} warm-up, ` +
  'one session, a keep-alive client (one connection at a time)');
console.log(`${'ms'.padEnd(16)}${'p50'.padStart(9)}${'p90'.padStart(9)}${'p99'.padStart(9)}${'mean'.padStart(9)}` +
  `${'max'.padStart(9)}  new TCP connections`);
for (const r of [ping, get, searchFlights]) {
  console.log(`${r.label.padEnd(16)}${fmt(r.p50)}${fmt(r.p90)}${fmt(r.p99)}${fmt(r.mean)}${fmt(r.max)}  ` +
    `${r.new_connections}${r.connection_close ? ` (server sent Connection: close ${r.connection_close} times)` : ''}`);
}
const ratio = (a, b) => Number((a / b).toFixed(2));
const ratios = {
  get_booking_vs_ping: { p50: ratio(get.p50, ping.p50), p99: ratio(get.p99, ping.p99) },
  search_flights_vs_ping: { p50: ratio(searchFlights.p50, ping.p50), p99: ratio(searchFlights.p99, ping.p99) },
};
console.log(`ratios to ping (same session): get_booking p50 x${ratios.get_booking_vs_ping.p50}, ` +
  `p99 x${ratios.get_booking_vs_ping.p99}; search_flights p50 x${ratios.search_flights_vs_ping.p50}, ` +
  `p99 x${ratios.search_flights_vs_ping.p99}`);
agent.destroy();
console.log(JSON.stringify({ n: N, warmup: WARMUP, connections: sockets.size, booking_id: bookingId,
  ping, get_booking: get, search_flights: searchFlights, ratios }));
