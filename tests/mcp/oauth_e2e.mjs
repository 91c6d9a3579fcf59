// End-to-end test of Itinera as an OAuth 2.1 resource server: the official
// TypeScript SDK's OAuth client discovers the local authorization server
// (tests/mcp/oauth_server.mjs) from our Protected Resource Metadata, gets a
// token through dynamic registration, authorization code and PKCE, and
// books a trip. Then, with tokens the authorization server mints on
// request: expired, wrong audience and unknown key -> 401; key rotation is
// picked up without restarting Itinera; a read-only token calling book_trip
// -> 403 insufficient_scope; another tenant's booking stays not found; the
// admin API with and without itinera:admin; the refusals in /metrics, and
// no token in the server's log. tests/mcp/oauth_e2e.sh starts both servers.
//
//   node oauth_e2e.mjs --url http://127.0.0.1:PORT/mcp --as http://127.0.0.1:PORT/ --log DEV_LOG
//
// Prints one "PASS name" or "FAIL name: why" line per test; exits non-zero
// when any failed.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import * as jose from 'jose';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { CallToolResultSchema } from '@modelcontextprotocol/sdk/types.js';

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i += 2) out[argv[i].replace(/^--/, '')] = argv[i + 1];
  for (const need of ['url', 'as', 'log']) if (!out[need]) throw new Error(`missing --${need}`);
  return out;
}
const args = parseArgs(process.argv.slice(2));
const MCP_URL = args.url;
const BASE = new URL('/', MCP_URL).href.replace(/\/$/, '');
const AS = args.as.replace(/\/$/, '');
const PROTOCOL = '2025-11-25';

const results = [];
async function test(name, fn) {
  const started = Date.now();
  try {
    await fn();
    results.push(true);
    console.log(`PASS ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    results.push(false);
    console.log(`FAIL ${name} (${Date.now() - started} ms): ${e instanceof Error ? (e.stack ?? e.message) : e}`);
  }
}

// ---------------------------------------------------------------- helpers

async function asPost(path, body = {}) {
  const r = await fetch(`${AS}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body) });
  assert.equal(r.status, 200, `${path}: ${r.status}`);
  return r.json();
}
async function mint(claims) { return (await asPost('/test/mint', { tenant: 'acme', ...claims })).token; }
async function asStats() { return (await fetch(`${AS}/test/stats`)).json(); }

// One JSON-RPC POST to /mcp with a bearer token; the answer's status,
// headers and body (JSON when it is JSON).
async function rpc(token, message, sessionId) {
  const headers = { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream',
    'MCP-Protocol-Version': PROTOCOL };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (sessionId) headers['Mcp-Session-Id'] = sessionId;
  const r = await fetch(MCP_URL, { method: 'POST', headers, body: JSON.stringify(message) });
  const text = await r.text();
  let body = text;
  // A tools/call may answer as an event stream: its last data line.
  if ((r.headers.get('content-type') ?? '').includes('text/event-stream')) {
    const data = text.split('\n').filter((l) => l.startsWith('data: ') && l.length > 6);
    body = data.length ? JSON.parse(data.at(-1).slice(6)) : null;
  } else if (text) {
    try { body = JSON.parse(text); } catch { /* not JSON */ }
  }
  return { status: r.status, headers: r.headers, body };
}
const initialize = (id = 1) => ({ jsonrpc: '2.0', id, method: 'initialize',
  params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: 'oauth-e2e-raw', version: '1' } } });
const toolCall = (id, name, args) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });

// A session opened with `token`: its id.
async function openSession(token) {
  const r = await rpc(token, initialize());
  assert.equal(r.status, 200, `initialize: ${r.status} ${JSON.stringify(r.body)}`);
  const id = r.headers.get('mcp-session-id');
  assert.ok(id, 'no Mcp-Session-Id');
  await rpc(token, { jsonrpc: '2.0', method: 'notifications/initialized' }, id);
  return id;
}

function assertRefused(r, what, status = 401, error = 'invalid_token') {
  assert.equal(r.status, status, `${what}: ${r.status} ${JSON.stringify(r.body)}`);
  const challenge = r.headers.get('www-authenticate') ?? '';
  assert.match(challenge, /^Bearer /, `${what}: WWW-Authenticate ${challenge}`);
  assert.ok(challenge.includes(`error="${error}"`), `${what}: WWW-Authenticate ${challenge}`);
  return challenge;
}

// An OAuthClientProvider that keeps everything in memory and plays the user
// agent: it follows the authorization URL and keeps the code of the redirect.
class TestAuthProvider {
  constructor(loginHint) {
    this.loginHint = loginHint;
    this.code = undefined;
    this.authorizationUrl = undefined;
  }
  get redirectUrl() { return 'http://127.0.0.1:9/callback'; }
  get clientMetadata() {
    return { client_name: 'itinera oauth e2e', redirect_uris: [this.redirectUrl], grant_types: ['authorization_code'],
      response_types: ['code'], token_endpoint_auth_method: 'none' };
  }
  clientInformation() { return this.client; }
  saveClientInformation(c) { this.client = c; }
  tokens() { return this.savedTokens; }
  saveTokens(t) { this.savedTokens = t; }
  saveCodeVerifier(v) { this.verifier = v; }
  codeVerifier() { return this.verifier; }
  async redirectToAuthorization(url) {
    url.searchParams.set('login_hint', this.loginHint);
    this.authorizationUrl = new URL(url);
    const r = await fetch(url, { redirect: 'manual' });
    assert.equal(r.status, 302, `authorize: ${r.status} ${await r.text()}`);
    const back = new URL(r.headers.get('location'));
    this.code = back.searchParams.get('code');
  }
}

// The SDK's own flow: the first connect meets our 401, discovers the
// authorization server and sends the user to it; finishAuth trades the code
// (with the PKCE verifier) for a token; the second connect uses it.
async function connectWithOAuth(loginHint) {
  const provider = new TestAuthProvider(loginHint);
  const first = new Client({ name: 'oauth-e2e', version: '1.0.0' });
  const firstTransport = new StreamableHTTPClientTransport(new URL(MCP_URL), { authProvider: provider });
  await assert.rejects(first.connect(firstTransport), (e) => e instanceof UnauthorizedError);
  assert.ok(provider.code, 'the authorization server redirected back with no code');
  await firstTransport.finishAuth(provider.code);
  const client = new Client({ name: 'oauth-e2e', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(MCP_URL), { authProvider: provider }));
  return { client, provider };
}

function structured(r, what) {
  assert.ok(r.structuredContent, `${what}: no structuredContent: ${JSON.stringify(r).slice(0, 400)}`);
  return r.structuredContent;
}
const callTool = (client, name, a) => client.callTool({ name, arguments: a }, CallToolResultSchema);

async function bookArgs(client, key) {
  const f = structured(await callTool(client, 'search_flights',
    { origin: 'CDG', destination: 'FCO', date: '2027-05-11', passengers: 1 }), 'search_flights');
  const h = structured(await callTool(client, 'search_hotels',
    { city: 'ROM', check_in: '2027-05-11', check_out: '2027-05-13', rooms: 1 }), 'search_hotels');
  assert.ok(f.flights?.length && h.hotels?.length, 'no offers');
  return {
    idempotency_key: key, flight_id: f.flights[0].flight_id, passengers: 1, hotel_id: h.hotels[0].hotel_id,
    check_in: '2027-05-11', check_out: '2027-05-13', rooms: 1, card_token: 'tok_visa',
    quote: { fare_cents: f.flights[0].fare_cents, hotel_total_cents: h.hotels[0].total_cents },
    fare_tolerance_percent: 50, travelers: [{ name: 'Ada Lovelace', email: 'ada@example.com' }],
  };
}

async function listBookings(client) {
  return structured(await callTool(client, 'list_bookings', {}), 'list_bookings').bookings ?? [];
}

async function metric(name, labels) {
  const text = await (await fetch(`${BASE}/metrics`)).text();
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (want.every((w) => line.includes(w))) return Number(line.split(' ').at(-1));
  }
  return 0;
}

// ---------------------------------------------------------------- tests

const issued = [];  // every token seen, to check none reaches the log
let acme;           // the SDK client of alice@acme
let bookingId;      // the trip it booked

await test('oauth: the protected resource metadata names the authorization server and the scopes', async () => {
  const r = await fetch(`${BASE}/.well-known/oauth-protected-resource/mcp`);
  assert.equal(r.status, 200);
  const doc = await r.json();
  assert.equal(doc.resource, MCP_URL);
  assert.deepEqual(doc.authorization_servers, [`${AS}/`]);
  assert.deepEqual(doc.scopes_supported, ['bookings:read', 'bookings:write']);
  const anonymous = await rpc(undefined, initialize());
  assert.equal(anonymous.status, 401);
  assert.match(anonymous.headers.get('www-authenticate') ?? '',
    new RegExp(`resource_metadata="${BASE}/\\.well-known/oauth-protected-resource/mcp"`));
});

await test('oauth: the SDK client authorizes with code + PKCE and books a trip', async () => {
  const { client, provider } = await connectWithOAuth('alice@acme');
  acme = client;
  const url = provider.authorizationUrl;
  assert.equal(url.searchParams.get('code_challenge_method'), 'S256');
  assert.ok(url.searchParams.get('code_challenge'), 'PKCE challenge sent');
  assert.equal(url.searchParams.get('resource'), MCP_URL, 'RFC 8707 resource');
  const token = provider.tokens().access_token;
  issued.push(token);
  const claims = jose.decodeJwt(token);
  assert.equal(claims.aud, MCP_URL);
  assert.equal(claims.tenant, 'acme');
  assert.deepEqual(claims.scope.split(' ').sort(), ['bookings:read', 'bookings:write']);

  const booked = structured(await callTool(client, 'book_trip', await bookArgs(client, 'oauth-e2e-1')), 'book_trip');
  assert.equal(booked.status, 'booked', JSON.stringify(booked));
  bookingId = booked.booking.booking_id;
  assert.ok((await listBookings(client)).some((b) => b.booking_id === bookingId), 'the booking is listed');
});

await test('oauth: expired, premature, misdirected, foreign-signed and tenantless tokens get 401', async () => {
  const cases = {
    expired: await mint({ expires_in: -600 }),
    'not yet valid': await mint({ not_before: 600 }),
    'wrong audience': await mint({ aud: 'http://127.0.0.1:1/mcp' }),
    'unknown key': await mint({ key: 'stranger' }),
    'no tenant': await asPost('/test/mint', { tenant: undefined }).then((b) => b.token),
  };
  for (const [what, token] of Object.entries(cases)) {
    issued.push(token);
    assertRefused(await rpc(token, initialize()), what);
  }
  assertRefused(await rpc('not-a-known-token', initialize()), 'opaque token');
});

await test('oauth: a read-only token calling book_trip gets 403 insufficient_scope and books nothing', async () => {
  const reader = await mint({ scope: 'bookings:read' });
  issued.push(reader);
  const session = await openSession(reader);
  const before = (await listBookings(acme)).length;
  const search = await rpc(reader, toolCall(2, 'search_flights',
    { origin: 'CDG', destination: 'FCO', date: '2027-05-11', passengers: 1 }), session);
  assert.equal(search.status, 200, `search with bookings:read: ${search.status}`);
  const refused = await rpc(reader, toolCall(3, 'book_trip', await bookArgs(acme, 'oauth-e2e-readonly')), session);
  const challenge = assertRefused(refused, 'book_trip with bookings:read', 403, 'insufficient_scope');
  assert.ok(challenge.includes('scope="bookings:write"'), challenge);
  assert.equal((await listBookings(acme)).length, before, 'nothing was booked');
});

await test("oauth: another tenant's booking stays not found, and a session stays its subject's", async () => {
  const { client: globex, provider } = await connectWithOAuth('bob@globex');
  issued.push(provider.tokens().access_token);
  const got = await callTool(globex, 'get_booking', { booking_id: bookingId });
  assert.equal(got.isError, true, JSON.stringify(got));
  assert.match(got.content.map((c) => c.text).join('\n'), /No booking/);
  assert.ok(!(await listBookings(globex)).some((b) => b.booking_id === bookingId));

  const aliceToken = await mint({ sub: 'alice' });
  const session = await openSession(aliceToken);
  const mallory = await mint({ sub: 'mallory' });
  const bob = await mint({ sub: 'bob', tenant: 'globex' });
  issued.push(aliceToken, mallory, bob);
  assert.equal((await rpc(mallory, toolCall(4, 'list_bookings', {}), session)).status, 404, 'same tenant, other subject');
  assert.equal((await rpc(bob, toolCall(5, 'list_bookings', {}), session)).status, 404, 'other tenant');
  assert.equal((await rpc(aliceToken, toolCall(6, 'list_bookings', {}), session)).status, 200, 'its own subject');
});

await test('oauth: a rotated signing key is picked up without a restart', async () => {
  const old = await mint({});
  issued.push(old);
  assert.equal((await rpc(old, initialize())).status, 200);
  const fetchesBefore = (await asStats()).jwks_fetches;
  const rotated = await asPost('/test/rotate');
  const fresh = await mint({});
  issued.push(fresh);
  assert.equal(jose.decodeProtectedHeader(fresh).kid, rotated.kid);
  assert.equal((await rpc(fresh, initialize())).status, 200, `a token of the new key (${rotated.alg})`);
  assert.ok((await asStats()).jwks_fetches > fetchesBefore, 'the key set was fetched again');
  assertRefused(await rpc(old, initialize()), 'a token of the retired key');
  // The SDK client's session goes on with a token of the new key.
  const { client } = await connectWithOAuth('alice@acme');
  assert.ok((await listBookings(client)).some((b) => b.booking_id === bookingId));
});

await test('oauth: the admin API takes access tokens with itinera:admin only', async () => {
  const admin = (token) => fetch(`${BASE}/admin/v1/workflows`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  assert.equal((await admin()).status, 401);
  const plain = await mint({ scope: 'bookings:read bookings:write' });
  const operator = await mint({ scope: 'itinera:admin', tenant: undefined, sub: 'ops' });
  issued.push(plain, operator);
  const refused = await admin(plain);
  assert.equal(refused.status, 403);
  assert.match(refused.headers.get('www-authenticate') ?? '', /error="insufficient_scope", scope="itinera:admin"/);
  const ok = await admin(operator);
  assert.equal(ok.status, 200, await ok.text());
  assert.equal((await admin(await mint({ scope: 'itinera:admin', expires_in: -600 }))).status, 401, 'expired');
});

await test('oauth: refusals are counted by reason, and no token reaches the log', async () => {
  for (const reason of ['expired', 'audience', 'signature', 'not_yet_valid', 'no_tenant', 'insufficient_scope']) {
    assert.ok(await metric('itinera_auth_failures_total', { endpoint: 'mcp', reason }) >= 1, `mcp ${reason}`);
  }
  assert.ok(await metric('itinera_auth_failures_total', { endpoint: 'admin', reason: 'insufficient_scope' }) >= 1);
  const log = fs.readFileSync(args.log, 'utf8');
  assert.match(log, /refused a request: expired/, 'refusals are logged');
  for (const token of issued) {
    assert.ok(!log.includes(token.split('.')[2]), 'a token signature appears in the log');
  }
});

if (acme) await acme.close();
const failed = results.filter((ok) => !ok).length;
console.log(`${results.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
