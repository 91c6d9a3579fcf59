// One side of bench/mcp_flood.sh: N simulated agents of one tenant, each with
// its own MCP session and its own keep-alive connection, calling one tool
// over Streamable HTTP until a deadline or a request budget runs out.
//
//   --role quiet  each agent calls every --interval-ms (with jitter) and the
//                 latency of every answered call is kept;
//   --role flood  each agent calls back to back, ignoring Retry-After.
//
//   node mcp_flood.mjs --url URL --token TOKEN --role quiet|flood --agents N
//                      --seconds S [--interval-ms MS] [--tool NAME]
//                      [--max-requests M] [--ready-file PATH]
//
// --seconds counts from when every session is open, which is when it writes
// --ready-file. Prints one JSON line:
// the counts by outcome and, for answered calls, the latency percentiles (ms).
import fs from 'node:fs';
import http from 'node:http';

function parseArgs(argv) {
  const out = { 'interval-ms': '400', tool: 'list_bookings', 'max-requests': '2000000' };
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || i + 1 >= argv.length) throw new Error(`bad argument ${argv[i]}`);
    out[argv[i].slice(2)] = argv[i + 1];
  }
  for (const need of ['url', 'token', 'role', 'agents', 'seconds']) {
    if (!out[need]) throw new Error(`need --${need}`);
  }
  return out;
}

const args = parseArgs(process.argv.slice(2));
const url = new URL(args.url);
const AGENTS = Number(args.agents);
let DEADLINE = 0;  // set once every session is open
const INTERVAL = Number(args['interval-ms']);
const MAX_REQUESTS = Number(args['max-requests']);
const FLOOD = args.role === 'flood';
const PROTOCOL = '2025-11-25';

const counts = { ok: 0, limited: 0, refused_connection: 0, other_status: 0, rpc_error: 0, network_error: 0 };
const retryAfter = new Set();
const latencies = [];
let requests = 0;

function post(agent, headers, message) {
  const body = JSON.stringify(message);
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: url.hostname, port: url.port, path: url.pathname, method: 'POST', agent,
      headers: {
        'Content-Type': 'application/json',
        Accept: 'application/json, text/event-stream',
        Authorization: `Bearer ${args.token}`,
        'Content-Length': Buffer.byteLength(body),
        ...headers,
      },
    }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.setTimeout(60_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

// The JSON-RPC message answering `id`, from a JSON or an SSE body.
function answerOf(res, id) {
  if ((res.headers['content-type'] ?? '').startsWith('text/event-stream')) {
    for (const line of res.body.split('\n')) {
      if (!line.startsWith('data:') || line.slice(5).trim() === '') continue;
      const m = JSON.parse(line.slice(5));
      if (m.id === id) return m;
    }
    return undefined;
  }
  return JSON.parse(res.body);
}

async function startSession() {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      const res = await post(agent, {}, {
        jsonrpc: '2.0', id: 0, method: 'initialize',
        params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: `bench-${args.role}`, version: '1' } },
      });
      if (res.status === 200) {
        const headers = { 'Mcp-Session-Id': res.headers['mcp-session-id'], 'MCP-Protocol-Version': PROTOCOL };
        await post(agent, headers, { jsonrpc: '2.0', method: 'notifications/initialized' });
        return { agent, headers, nextId: 1 };
      }
    } catch { /* retried */ }
    await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
  }
  throw new Error('could not initialize a session');
}

async function call(session) {
  const id = session.nextId++;
  requests++;
  const started = process.hrtime.bigint();
  let res;
  try {
    res = await post(session.agent, session.headers,
      { jsonrpc: '2.0', id, method: 'tools/call', params: { name: args.tool, arguments: {} } });
  } catch {
    counts.network_error++;
    return;
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (res.status === 429) {
    counts.limited++;
    retryAfter.add(res.headers['retry-after']);
  } else if (res.status === 503) {
    counts.refused_connection++;
  } else if (res.status !== 200) {
    counts.other_status++;
  } else {
    const answer = answerOf(res, id);
    if (!answer || answer.error || answer.result?.isError) {
      counts.rpc_error++;
    } else {
      counts.ok++;
      latencies.push(ms);
    }
  }
}

async function runAgent(session) {
  // Quiet agents start spread over one interval.
  if (!FLOOD) await new Promise((r) => setTimeout(r, Math.random() * INTERVAL));
  while (Date.now() < DEADLINE && requests < MAX_REQUESTS) {
    const next = Date.now() + INTERVAL * (0.5 + Math.random());
    await call(session);
    if (!FLOOD) await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
  }
}

const sessions = [];
for (let i = 0; i < AGENTS; i += 50) {
  sessions.push(...await Promise.all(Array.from({ length: Math.min(50, AGENTS - i) }, startSession)));
}
if (args['ready-file']) fs.writeFileSync(args['ready-file'], 'ready\n');
const began = Date.now();
DEADLINE = began + Number(args.seconds) * 1000;
await Promise.all(sessions.map(runAgent));
const seconds = (Date.now() - began) / 1000;

latencies.sort((a, b) => a - b);
const pct = (p) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.ceil((p / 100) * latencies.length) - 1)] : null);
console.log(JSON.stringify({
  role: args.role, tool: args.tool, agents: AGENTS, seconds, requests, ...counts,
  retry_after: [...retryAfter].filter(Boolean).sort(),
  latency_ms: { n: latencies.length, p50: pct(50), p90: pct(90), p99: pct(99), max: pct(100) },
}));
for (const s of sessions) s.agent.destroy();
