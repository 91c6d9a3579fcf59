// Hostile request bodies against every endpoint of a running `itinera dev`
// and against `itinera mcp` on stdio (tests/mcp/hostile_input.sh starts dev
// and runs this on the pinned Node 22; node built-ins only):
//   /mcp after initialize, /admin/v1/ (an operation and a bulk operation),
//   the supplier simulator (a POST with an Idempotency-Key, its admin PUT),
//   `itinera mcp` lines, and `itinera workflow start --input`.
// Each body (nesting 100,000 deep, deep objects, a long string, numbers past
// every type, bytes that are not UTF-8, truncated JSON, duplicate keys) must
// get a 4xx or a JSON-RPC error that names the problem, and afterwards the
// process must still be alive and a valid request must succeed.
//   node hostile_input.mjs --itinera BIN --url http://127.0.0.1:PORT
//     --supplier http://127.0.0.1:SPORT --dsn DSN --pid DEV_PID
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import http from 'node:http';
import readline from 'node:readline';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith('--') ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []),
);
for (const k of ['itinera', 'url', 'supplier', 'dsn', 'pid']) assert.ok(args[k], `--${k} is required`);
const BASE = args.url;
const SUPPLIER = args.supplier;
const DEV_PID = Number(args.pid);
const PROTOCOL = '2025-11-25';

// ------------------------------------------------------------------ bodies

const DEEP = 100_000;
const nestedArrays = (n) => '['.repeat(n) + ']'.repeat(n);
const nestedObjects = (n) => '{"a":'.repeat(n) + '1' + '}'.repeat(n);
const DEPTH_ERROR = /nested deeper than the limit of 64 levels/;

// Each case is a JSON value's text (a Buffer when it is not UTF-8), put where
// an endpoint reads a value; `problem` is what every parse-level refusal
// must say. Cases without `problem` parse and are refused by the endpoint's
// own checks (any 4xx, or -32602 over MCP).
function cases(depth, objectDepth = depth) {
  return [
    { name: `arrays nested ${depth} deep`, value: nestedArrays(depth), problem: DEPTH_ERROR },
    { name: `objects nested ${objectDepth} deep`, value: nestedObjects(objectDepth), problem: DEPTH_ERROR },
    { name: 'nesting one level past the limit', value: nestedArrays(70), problem: DEPTH_ERROR },
    { name: 'bytes that are not UTF-8', value: Buffer.from([0x22, 0x41, 0xff, 0xfe, 0xc3, 0x28, 0x22]), problem: /UTF-8/ },
    { name: 'a lone surrogate escape', value: '"\\ud800"', problem: /surrogate/ },
    { name: 'a number past double', value: '1e999', problem: /number overflow/ },
    { name: 'a negative number past double', value: '-1e400', problem: /number overflow/ },
    { name: 'NaN', value: 'NaN', problem: /invalid JSON/ },
    { name: 'duplicate keys', value: '{"a":1,"a":2}', problem: /duplicate key "a"/ },
    { name: 'truncated JSON', value: '{"a":[1,2', truncate: true, problem: /invalid JSON/ },
    { name: 'a huge number', value: '1e300' },
    { name: 'an integer past 64 bits', value: '18446744073709551616' },
    { name: 'a number at 2^63', value: '9223372036854775808' },
  ];
}

// `template` with `value` in place of @, as bytes; a truncated case cuts
// the whole text short.
function body(template, c) {
  const [before, after] = template.split('@');
  const parts = [Buffer.from(before), Buffer.isBuffer(c.value) ? c.value : Buffer.from(c.value)];
  if (!c.truncate) parts.push(Buffer.from(after));
  return Buffer.concat(parts);
}

// ------------------------------------------------------------------ HTTP

function request(url, { method = 'POST', headers = {}, body } = {}) {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = http.request({
      host: u.hostname, port: u.port, path: u.pathname + u.search, method, agent: false,
      headers: { ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}), ...headers },
    }, (res) => {
      answered = true;
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    // A server may answer (413) and close before it read the whole body, so
    // a failed write waits a moment for that answer; no answer is a failure
    // (a server that died mid-request resets the connection).
    req.on('error', (e) => {
      if (!['EPIPE', 'ECONNRESET'].includes(e.code)) return reject(e);
      setTimeout(() => answered || reject(new Error(`${method} ${url}: the connection ended without an answer (${e.code})`)), 2000);
    });
    if (body !== undefined) req.write(body);
    req.end();
  });
}

function parseJson(text, what) {
  try {
    return JSON.parse(text);
  } catch {
    assert.fail(`${what}: the answer is not JSON: ${text.slice(0, 200)}`);
  }
}

// The JSON-RPC answer of an MCP POST: the body, or the last event of an
// event stream (a tools/call from a client that accepts one).
function answerOf(res, what) {
  if (!String(res.headers['content-type'] || '').includes('text/event-stream')) return parseJson(res.text, what);
  const data = res.text.split('\n').filter((l) => l.startsWith('data: ') && l.length > 6);
  assert.ok(data.length, `${what}: an event stream without an answer: ${res.text.slice(0, 300)}`);
  return parseJson(data[data.length - 1].slice(6), what);
}

function assertDevAlive(what) {
  try {
    process.kill(DEV_PID, 0);
  } catch {
    assert.fail(`itinera dev died after ${what}`);
  }
}

// ------------------------------------------------------------------ endpoints

const mcpHeaders = { Accept: 'application/json, text/event-stream', 'MCP-Protocol-Version': PROTOCOL };
let session = '';

async function mcpInitialize() {
  const init = await request(`${BASE}/mcp`, {
    headers: mcpHeaders,
    body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize',
      params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: 'hostile', version: '1' } } }),
  });
  assert.equal(init.status, 200, `initialize: ${init.status} ${init.text}`);
  session = init.headers['mcp-session-id'];
  assert.ok(session, 'initialize returned no Mcp-Session-Id');
  const ack = await request(`${BASE}/mcp`, {
    headers: { ...mcpHeaders, 'Mcp-Session-Id': session },
    body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
  });
  assert.equal(ack.status, 202, `notifications/initialized: ${ack.status} ${ack.text}`);
}

// The supplier's listener refuses bodies over 64 KiB before parsing (413);
// smaller ones reach its parser, which names the problem (400).
function supplierRefusal(c, res) {
  const answer = parseJson(res.text, 'supplier');
  if (c.tooLarge) {
    assert.equal(res.status, 413, res.text);
  } else if (c.problem) {
    assert.equal(res.status, 400, res.text);
    assert.equal(answer.field, 'body', res.text);
    assert.match(answer.message, c.problem);
  }
}

// Every HTTP endpoint: how to send a value, what a refusal looks like, and
// a valid request that must still succeed afterwards.
const endpoints = [
  {
    name: 'POST /mcp tools/call arguments',
    send: (c) => request(`${BASE}/mcp`, {
      headers: { ...mcpHeaders, 'Mcp-Session-Id': session },
      body: body('{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search_flights","arguments":{"origin":"CDG","destination":"FCO","date":"2027-03-01","passengers":@}}}', c),
    }),
    check: (c, res) => {
      const answer = answerOf(res, 'mcp');
      assert.ok(answer.error, `expected a JSON-RPC error, got ${res.status} ${res.text.slice(0, 300)}`);
      if (c.problem) {
        assert.equal(res.status, 400, res.text);
        assert.equal(answer.error.code, -32700, res.text);
        assert.match(answer.error.message, c.problem);
      } else {
        assert.equal(res.status, 200, res.text);
        assert.equal(answer.error.code, -32602, res.text);
        assert.equal(answer.error.data?.field, 'arguments.passengers', res.text);
      }
    },
    alive: async () => {
      const ping = await request(`${BASE}/mcp`, {
        headers: { ...mcpHeaders, 'Mcp-Session-Id': session },
        body: JSON.stringify({ jsonrpc: '2.0', id: 99, method: 'ping' }),
      });
      assert.equal(ping.status, 200, `ping: ${ping.status} ${ping.text}`);
      assert.deepEqual(parseJson(ping.text, 'ping').result, {});
    },
  },
  {
    name: 'POST /mcp _meta',
    send: (c) => request(`${BASE}/mcp`, {
      headers: { ...mcpHeaders, 'Mcp-Session-Id': session },
      body: body('{"jsonrpc":"2.0","id":8,"method":"ping","params":{"_meta":{"progressToken":@}}}', c),
    }),
    check: (c, res) => {
      if (c.problem) {
        const answer = parseJson(res.text, 'mcp');
        assert.equal(res.status, 400, res.text);
        assert.equal(answer.error?.code, -32700, res.text);
        assert.match(answer.error.message, c.problem);
      } else {
        assert.equal(res.status, 200, res.text);  // a number is a fine progress token
      }
    },
    alive: async () => endpoints[0].alive(),
  },
  {
    name: 'POST /mcp as a batch',
    send: (c) => request(`${BASE}/mcp`, {
      headers: { ...mcpHeaders, 'Mcp-Session-Id': session },
      body: body('[@,{"jsonrpc":"2.0","id":9,"method":"ping"}]', c),
    }),
    check: (c, res) => {
      assert.ok(res.status === 400 || res.status === 200, `${res.status} ${res.text}`);
      const answer = parseJson(res.text, 'mcp');
      assert.ok(answer.error, `a batch is refused in ${PROTOCOL}: ${res.text.slice(0, 300)}`);
      if (c.problem) assert.match(answer.error.message, c.problem);
    },
    alive: async () => endpoints[0].alive(),
  },
  {
    name: 'POST /admin/v1/workflows/{id}/signal',
    send: (c) => request(`${BASE}/admin/v1/workflows/no-such-workflow/signal`, {
      body: body('{"name":"poke","input":@}', c),
    }),
    check: (c, res) => {
      assert.ok(res.status >= 400 && res.status < 500, `${res.status} ${res.text}`);
      const answer = parseJson(res.text, 'admin');
      if (c.problem) {
        assert.equal(answer.field, 'body', res.text);
        assert.match(answer.message, c.problem);
      }
    },
    alive: async () => {
      const list = await request(`${BASE}/admin/v1/workflows?limit=1`, { method: 'GET' });
      assert.equal(list.status, 200, `admin list: ${list.status} ${list.text}`);
    },
  },
  {
    name: 'POST /admin/v1/bulk/cancel',
    send: (c) => request(`${BASE}/admin/v1/bulk/cancel`, { body: body('{"filter":@,"dry_run":true}', c) }),
    check: (c, res) => {
      assert.ok(res.status >= 400 && res.status < 500, `${res.status} ${res.text}`);
      if (c.problem) assert.match(parseJson(res.text, 'admin').message, c.problem);
    },
    alive: async () => endpoints[3].alive(),
  },
  {
    name: 'supplier POST /flights/holds',
    supplier: true,
    send: (c) => request(`${SUPPLIER}/flights/holds`, {
      headers: { 'Idempotency-Key': `hostile-${Math.random().toString(16).slice(2)}` },
      body: body('{"flight_id":"IT100","passengers":@}', c),
    }),
    check: (c, res) => {
      assert.ok(res.status >= 400 && res.status < 500, `${res.status} ${res.text}`);
      supplierRefusal(c, res);
    },
    alive: async () => {
      const health = await request(`${SUPPLIER}/health`, { method: 'GET' });
      assert.equal(health.status, 200, `supplier health: ${health.status} ${health.text}`);
    },
  },
  {
    name: 'supplier PUT /admin/faults',
    supplier: true,
    send: (c) => request(`${SUPPLIER}/admin/faults`, { method: 'PUT', body: body('{"rules":@}', c) }),
    check: (c, res) => {
      assert.ok(res.status >= 400 && res.status < 500, `${res.status} ${res.text}`);
      supplierRefusal(c, res);
    },
    alive: async () => endpoints[5].alive(),
  },
];

// ------------------------------------------------------------------ stdio

// `itinera mcp` with a line reader: send(line) resolves with the next
// answer line.
function startStdio() {
  const child = spawn(args.itinera, ['mcp', '--db', args.dsn, '--tenant', 'dev', '--supplier-url', SUPPLIER],
    { stdio: ['pipe', 'pipe', 'pipe'] });
  const stderr = [];
  child.stderr.on('data', (d) => {
    stderr.push(String(d));
    if (stderr.length > 50) stderr.shift();
  });
  const waiting = [];
  const lines = [];
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    if (waiting.length) waiting.shift()(line); else lines.push(line);
  });
  let exit = null;
  child.on('exit', (code, signal) => {
    exit = { code, signal };
    for (const w of waiting.splice(0)) w(null);
  });
  const next = () => new Promise((resolve) => (lines.length ? resolve(lines.shift()) : exit ? resolve(null) : waiting.push(resolve)));
  return {
    child, stderr,
    exit: () => exit,
    async send(bytes) {
      child.stdin.write(Buffer.concat([Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes), Buffer.from('\n')]));
      const line = await next();
      assert.ok(line !== null, `itinera mcp exited (${JSON.stringify(exit)}); stderr:\n${stderr.join('')}`);
      return parseJson(line, 'itinera mcp');
    },
  };
}

// ------------------------------------------------------------------ run

let failures = 0;
async function test(name, fn) {
  try {
    await fn();
    console.log(`ok   ${name}`);
  } catch (e) {
    failures += 1;
    console.log(`FAIL ${name}\n     ${String(e.stack || e).split('\n').slice(0, 6).join('\n     ')}`);
  }
}

await mcpInitialize();

for (const endpoint of endpoints) {
  // The supplier's listener takes bodies up to 64 KiB: arrays 30,000 deep
  // and objects 6,000 deep reach its parser, 100,000 deep its body limit (413).
  const all = endpoint.supplier
    ? [...cases(30_000, 6_000),
      ...cases(DEEP).filter((c) => /nested [0-9]/.test(c.name)).map((c) => ({ ...c, tooLarge: true }))]
    : cases(DEEP);
  for (const c of all) {
    await test(`${endpoint.name}: ${c.name}${c.tooLarge ? ' (past the body limit)' : ''}`, async () => {
      const res = await endpoint.send(c);
      assertDevAlive(`${endpoint.name}: ${c.name}`);
      endpoint.check(c, res);
      await endpoint.alive();
    });
  }
}

await test('POST /mcp: a string longer than the body limit gets 413', async () => {
  const res = await endpoints[0].send({ value: `"${'x'.repeat(2 * 1024 * 1024)}"` });
  assertDevAlive('a 2 MiB string');
  assert.equal(res.status, 413, res.text.slice(0, 300));
  await endpoints[0].alive();
});

await test('POST /mcp: a long string inside the body limit is checked against the schema', async () => {
  const res = await request(`${BASE}/mcp`, {
    headers: { ...mcpHeaders, 'Mcp-Session-Id': session },
    body: JSON.stringify({ jsonrpc: '2.0', id: 10, method: 'tools/call',
      params: { name: 'search_flights', arguments: { origin: 'x'.repeat(900_000), destination: 'FCO', date: '2027-03-01' } } }),
  });
  const answer = answerOf(res, 'mcp');
  assert.equal(answer.error?.code, -32602, res.text.slice(0, 300));
  assert.equal(answer.error.data?.field, 'arguments.origin');
  await endpoints[0].alive();
});

await test('POST /mcp: a valid tool call still works', async () => {
  const res = await request(`${BASE}/mcp`, {
    headers: { ...mcpHeaders, Accept: 'application/json', 'Mcp-Session-Id': session },
    body: JSON.stringify({ jsonrpc: '2.0', id: 11, method: 'tools/call',
      params: { name: 'search_flights', arguments: { origin: 'CDG', destination: 'FCO', date: '2027-03-01', passengers: 1 } } }),
  });
  assert.equal(res.status, 200, res.text.slice(0, 300));
  const answer = answerOf(res, 'mcp');
  assert.ok(answer.result && !answer.result.isError, res.text.slice(0, 300));
  assert.ok(Array.isArray(answer.result.structuredContent?.flights), res.text.slice(0, 300));
});

await test('itinera mcp (stdio): every case gets -32700 or -32602, and it keeps serving', async () => {
  const stdio = startStdio();
  try {
    const init = await stdio.send(JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize',
      params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: 'hostile', version: '1' } } }));
    assert.ok(init.result, JSON.stringify(init));
    const all = [...cases(DEEP), { name: 'a string of 2 MiB', value: `"${'x'.repeat(2 * 1024 * 1024)}"`,
      problem: /JSON string at params\.arguments\.passengers is longer than the limit of 1048576 bytes/ }];
    for (const c of all) {
      const answer = await stdio.send(body('{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"search_flights","arguments":{"origin":"CDG","destination":"FCO","date":"2027-03-01","passengers":@}}}', c));
      assert.ok(answer.error, `${c.name}: ${JSON.stringify(answer).slice(0, 300)}`);
      if (c.problem) {
        assert.equal(answer.error.code, -32700, `${c.name}: ${JSON.stringify(answer)}`);
        assert.match(answer.error.message, c.problem, c.name);
      } else {
        assert.equal(answer.error.code, -32602, `${c.name}: ${JSON.stringify(answer)}`);
      }
      assert.equal(stdio.exit(), null, `itinera mcp exited after ${c.name}`);
    }
    const list = await stdio.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }));
    assert.ok(list.result?.tools?.some((t) => t.name === 'book_trip'), JSON.stringify(list).slice(0, 300));
  } finally {
    stdio.child.stdin.end();
  }
  const code = await new Promise((resolve) => (stdio.exit() ? resolve(stdio.exit()) : stdio.child.on('exit', (c, s) => resolve({ code: c, signal: s }))));
  assert.deepEqual(code, { code: 0, signal: null }, `itinera mcp's exit; stderr:\n${stdio.stderr.join('')}`);
});

await test('itinera workflow start --input: deep nesting is an error naming the input', async () => {
  // One command-line argument holds at most 128 KiB.
  const run = spawnSync(args.itinera, ['workflow', '--db', args.dsn, 'start', 'BookTrip', '--id', 'hostile-cli',
    '--input', `{"travelers":${nestedArrays(50_000)}}`], { encoding: 'utf8' });
  assert.equal(run.signal, null, `killed by ${run.signal}: ${run.stderr}`);
  assert.equal(run.status, 2, `exit ${run.status} (2: bad input): ${run.stdout} ${run.stderr}`);
  assert.match(run.stderr, /input: JSON nested deeper than the limit of 64 levels/, run.stderr);
});

assertDevAlive('everything');
if (failures) {
  console.log(`${failures} failed`);
  process.exit(1);
}
console.log('all passed');
