// A local OAuth 2.1 authorization server for tests/mcp/oauth_e2e.mjs, built
// on the TypeScript SDK's server-side auth router (metadata, dynamic client
// registration, /authorize with PKCE, /token) and `jose` for the JWT access
// tokens it signs (RFC 9068). The one user consents at once: /authorize
// redirects straight back with a code; `login_hint=SUB@TENANT` picks who
// logs in (default alice@acme).
//
// Besides the OAuth endpoints it has controls a test needs and a real
// server would not: POST /test/mint issues a token with chosen claims (or
// signed by a key nobody publishes), POST /test/rotate replaces the signing
// key, GET /test/stats counts key-set fetches.
//
//   node oauth_server.mjs --port PORT --resource URL
import crypto from 'node:crypto';
import express from 'express';
import * as jose from 'jose';
import { createOAuthMetadata, mcpAuthRouter } from '@modelcontextprotocol/sdk/server/auth/router.js';

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i += 2) out[argv[i].replace(/^--/, '')] = argv[i + 1];
  if (!out.port || !out.resource) throw new Error('usage: oauth_server.mjs --port PORT --resource URL');
  return out;
}

const args = parseArgs(process.argv.slice(2));
const ISSUER = new URL(`http://127.0.0.1:${args.port}/`);
const SCOPES = ['bookings:read', 'bookings:write', 'itinera:admin'];
const DEFAULT_SCOPES = ['bookings:read', 'bookings:write'];

// Signing keys: the current one is published; the stranger never is.
async function newKey(alg, kid) {
  const { publicKey, privateKey } = await jose.generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await jose.exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { alg, kid, privateKey, jwk };
}
let current = await newKey('RS256', 'rsa-1');
const stranger = await newKey('RS256', 'rsa-1');  // same kid, other key material
let generation = 1;
const stats = { jwks_fetches: 0, tokens_issued: 0 };

async function sign({ sub, tenant, scope, aud, expiresIn = 300, notBefore, key = current, clientId = 'test' }) {
  const now = Math.floor(Date.now() / 1000);
  const claims = { scope, client_id: clientId };
  if (tenant !== undefined) claims.tenant = tenant;
  let jwt = new jose.SignJWT(claims)
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt' })
    .setIssuer(ISSUER.href)
    .setAudience(aud)
    .setSubject(sub)
    .setIssuedAt(now)
    .setJti(crypto.randomUUID())
    .setExpirationTime(now + expiresIn);
  if (notBefore !== undefined) jwt = jwt.setNotBefore(now + notBefore);
  stats.tokens_issued++;
  return jwt.sign(key.privateKey);
}

const clients = new Map();
const codes = new Map();  // code -> { clientId, params, sub, tenant }

const provider = {
  clientsStore: {
    async getClient(id) { return clients.get(id); },
    async registerClient(client) { clients.set(client.client_id, client); return client; },
  },
  async authorize(client, params, res) {
    const [sub, tenant] = String(res.req.query.login_hint ?? 'alice@acme').split('@');
    const code = crypto.randomBytes(24).toString('base64url');
    codes.set(code, { clientId: client.client_id, params, sub, tenant });
    const to = new URL(params.redirectUri);
    to.searchParams.set('code', code);
    if (params.state !== undefined) to.searchParams.set('state', params.state);
    res.redirect(302, to.href);
  },
  async challengeForAuthorizationCode(client, code) {
    const grant = codes.get(code);
    if (!grant || grant.clientId !== client.client_id) throw new Error('unknown authorization code');
    return grant.params.codeChallenge;
  },
  async exchangeAuthorizationCode(client, code, _verifier, redirectUri, resource) {
    const grant = codes.get(code);
    if (!grant || grant.clientId !== client.client_id) throw new Error('unknown authorization code');
    if (redirectUri !== undefined && redirectUri !== grant.params.redirectUri) throw new Error('redirect_uri differs');
    codes.delete(code);  // single use
    const scopes = (grant.params.scopes?.length ? grant.params.scopes : DEFAULT_SCOPES).filter((s) => SCOPES.includes(s));
    // RFC 8707: the token is for the resource the client named.
    const aud = (resource ?? grant.params.resource)?.href ?? args.resource;
    const access_token = await sign({ sub: grant.sub, tenant: grant.tenant, scope: scopes.join(' '), aud,
      clientId: client.client_id });
    return { access_token, token_type: 'Bearer', expires_in: 300, scope: scopes.join(' ') };
  },
  async exchangeRefreshToken() { throw new Error('refresh tokens are not issued'); },
  async verifyAccessToken(token) {
    const { payload } = await jose.jwtVerify(token, jose.createLocalJWKSet({ keys: [current.jwk] }), { issuer: ISSUER.href });
    return { token, clientId: payload.client_id, scopes: String(payload.scope ?? '').split(' '), expiresAt: payload.exp };
  },
};

const app = express();
app.use(express.json());
// RFC 8414 metadata: the router's, plus where the signing keys are.
app.get('/.well-known/oauth-authorization-server', (_req, res) => {
  res.json({ ...createOAuthMetadata({ provider, issuerUrl: ISSUER, scopesSupported: SCOPES }),
    jwks_uri: new URL('/jwks.json', ISSUER).href });
});
app.get('/jwks.json', (_req, res) => {
  stats.jwks_fetches++;
  res.json({ keys: [current.jwk] });
});
app.use(mcpAuthRouter({
  provider,
  issuerUrl: ISSUER,
  scopesSupported: SCOPES,
  authorizationOptions: { rateLimit: false },
  clientRegistrationOptions: { rateLimit: false },
  tokenOptions: { rateLimit: false },
}));

// ---------------------------------------------------------------- test controls

app.post('/test/mint', async (req, res) => {
  const b = req.body ?? {};
  const token = await sign({
    sub: b.sub ?? 'alice',
    tenant: b.tenant,
    scope: b.scope ?? DEFAULT_SCOPES.join(' '),
    aud: b.aud ?? args.resource,
    expiresIn: b.expires_in ?? 300,
    notBefore: b.not_before,
    key: b.key === 'stranger' ? stranger : current,
  });
  res.json({ token });
});
app.post('/test/rotate', async (_req, res) => {
  // The next key is of the other family, so both RS256 and ES256 are used.
  generation++;
  current = await newKey(generation % 2 === 0 ? 'ES256' : 'RS256', `key-${generation}`);
  res.json({ kid: current.kid, alg: current.alg });
});
app.get('/test/stats', (_req, res) => res.json(stats));

app.listen(Number(args.port), '127.0.0.1', () => {
  console.log(`authorization server ${ISSUER.href} for ${args.resource}`);
});
