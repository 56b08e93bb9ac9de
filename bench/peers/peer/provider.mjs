// The peer of the comparative benchmark: panva's oidc-provider configured as an ID4me identity
// authority would be (dynamic registration, the claims parameter, PKCE, RS256/ES256, HTTPS,
// distributed claims in userinfo), with its interactions written out as a deployment writes
// them: a login form that checks a password hashed with node's crypto.scrypt (its defaults:
// N=16384, r=8, p=1, 64-byte key, 16-byte salt), and a consent page whose grant is remembered
// per account and client, so that a later login, in any browser, skips it.
//
// Started by `go run ./bench/peers` with its configuration as JSON in PEER_CONFIG:
//   port, cert, key     the HTTPS listener (loopback) and its PEM files
//   accounts            [{id, password}]: identifiers and passwords (hashed at start)
//   agentIssuer, agentEndpoint   the agent whose claims endpoint userinfo points to
//   agentToken          "plain": the access token the relying party presented is passed on
//                       (the agent checks it at the peer's introspection endpoint); "jwt": a
//                       JWT for the agent, signed for every userinfo answer
//   agentTokenAlg       RS256 or ES256, the JWT's algorithm
// It prints "listening on <port>" once it accepts connections.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http2 from 'node:http2';
import { promisify } from 'node:util';

import Provider from 'oidc-provider';
import { SignJWT } from 'jose';

const cfg = JSON.parse(process.env.PEER_CONFIG);
const scrypt = promisify(crypto.scrypt);
const issuer = `https://127.0.0.1:${cfg.port}`;

// Signing keys: one RSA-2048 key (RS256, first, so the default) and one P-256 key (ES256).
function jwk(type, opts, alg) {
  const { privateKey } = crypto.generateKeyPairSync(type, opts);
  return { ...privateKey.export({ format: 'jwk' }), alg, use: 'sig', kid: `${alg.toLowerCase()}-${crypto.randomUUID()}` };
}
const jwks = { keys: [jwk('rsa', { modulusLength: 2048 }, 'RS256'), jwk('ec', { namedCurve: 'P-256' }, 'ES256')] };
// The key the peer signs the agent's JWT with (the jwt variant), in node's own form.
const agentKey = crypto.createPrivateKey({
  key: jwks.keys[cfg.agentTokenAlg === 'ES256' ? 1 : 0], format: 'jwk',
});

// Each account's password is hashed once at start, as a deployment stores it.
const accounts = new Map(cfg.accounts.map((a) => {
  const salt = crypto.randomBytes(16);
  return [a.id, { salt, hash: crypto.scryptSync(a.password, salt, 64) }];
}));
// A dummy hash checked for unknown identifiers, so that they cost what known ones do.
const dummy = { salt: crypto.randomBytes(16), hash: crypto.randomBytes(64) };

async function checkPassword(id, password) {
  const a = accounts.get(id) || dummy;
  const got = await scrypt(password, a.salt, 64);
  return accounts.has(id) && crypto.timingSafeEqual(got, a.hash);
}

// The claims the agent answers for, distributed to it.
const distributed = ['email', 'email_verified', 'name', 'given_name', 'family_name', 'picture'];

async function agentToken(ctx, sub, token, claims) {
  if (cfg.agentToken !== 'jwt') {
    return token ? token.jti : undefined;
  }
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    'id4me.identifier': sub,
    clm: claims,
    scope: token?.scope,
    client_id: token?.clientId,
  })
    .setProtectedHeader({ alg: cfg.agentTokenAlg, kid: jwks.keys[cfg.agentTokenAlg === 'ES256' ? 1 : 0].kid, typ: 'JWT' })
    .setIssuer(issuer).setSubject(sub).setAudience(cfg.agentIssuer)
    .setIssuedAt(now).setExpirationTime(now + 600).setJti(crypto.randomUUID())
    .sign(agentKey);
}

// The store: oidc-provider's own in-memory adapter keeps at most 1,000 entries (an LRU, for
// development), which the registration figure alone fills, dropping sessions and clients. This
// is the same adapter over an unbounded Map with expiry: in memory, as in the issue's
// measurement, without evictions.
const storage = new Map(); // key -> { value, expiresAt (ms, 0: never) }
function sget(key) {
  const e = storage.get(key);
  if (!e) {
    return undefined;
  }
  if (e.expiresAt && e.expiresAt < Date.now()) {
    storage.delete(key);
    return undefined;
  }
  return e.value;
}
function sset(key, value, expiresIn) {
  storage.set(key, { value, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : 0 });
}
setInterval(() => {
  const now = Date.now();
  for (const [key, e] of storage) {
    if (e.expiresAt && e.expiresAt < now) {
      storage.delete(key);
    }
  }
}, 60000).unref();
const grantable = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);

class MapAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async destroy(id) {
    storage.delete(this.key(id));
  }

  async consume(id) {
    const p = sget(this.key(id));
    if (p) {
      p.consumed = Math.floor(Date.now() / 1000);
    }
  }

  async find(id) {
    return sget(this.key(id));
  }

  async findByUid(uid) {
    const id = sget(`sessionUid:${uid}`);
    return id ? this.find(id) : undefined;
  }

  async findByUserCode(userCode) {
    const id = sget(`userCode:${userCode}`);
    return id ? this.find(id) : undefined;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    if (this.model === 'Session') {
      sset(`sessionUid:${payload.uid}`, id, expiresIn);
    }
    const { grantId, userCode } = payload;
    if (grantable.has(this.model) && grantId) {
      const grant = sget(`grant:${grantId}`);
      if (grant) {
        grant.push(key);
      } else {
        sset(`grant:${grantId}`, [key]);
      }
    }
    if (userCode) {
      sset(`userCode:${userCode}`, id, expiresIn);
    }
    sset(key, payload, expiresIn);
  }

  async revokeByGrantId(grantId) { // eslint-disable-line class-methods-use-this
    for (const key of sget(`grant:${grantId}`) || []) {
      storage.delete(key);
    }
    storage.delete(`grant:${grantId}`);
  }
}

const grants = new Map(); // `${accountId} ${clientId}` -> grantId: remembered consents

const configuration = {
  jwks,
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  features: {
    devInteractions: { enabled: false },
    registration: { enabled: true },
    claimsParameter: { enabled: true },
    jwtUserinfo: { enabled: true },
    introspection: { enabled: true },
    userinfo: { enabled: true },
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name', 'picture'],
  },
  scopes: ['openid', 'email', 'profile'],
  enabledJWA: {
    idTokenSigningAlgValues: ['RS256', 'ES256'],
    userinfoSigningAlgValues: ['RS256', 'ES256'],
  },
  pkce: { required: (ctx, client) => client.clientAuthMethod === 'none' },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId)
      || grants.get(`${ctx.oidc.session.accountId} ${ctx.oidc.client.clientId}`);
    return grantId ? ctx.oidc.provider.Grant.find(grantId) : undefined;
  },
  async findAccount(ctx, sub, token) {
    if (!accounts.has(sub)) {
      return undefined;
    }
    return {
      accountId: sub,
      async claims(use, scope, claims) {
        if (use !== 'userinfo') {
          return { sub };
        }
        const names = {};
        for (const c of distributed) {
          names[c] = 'agent';
        }
        const requested = Object.keys(claims || {}).filter((c) => distributed.includes(c));
        return {
          sub,
          _claim_names: names,
          _claim_sources: {
            agent: { endpoint: cfg.agentEndpoint, access_token: await agentToken(ctx, sub, token, requested) },
          },
        };
      },
    };
  },
};

const provider = new Provider(issuer, { adapter: MapAdapter, ...configuration });
provider.on('server_error', (ctx, err) => console.error('server_error', err));
const callback = provider.callback();

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(res, status, title, action, fields, alert) {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.end(`<!doctype html><html><head><title>${esc(title)}</title></head><body><h1>${esc(title)}</h1>
${alert ? `<p class="alert" role="alert" id="error">${esc(alert)}</p>` : ''}<form method="post" action="${esc(action)}">
${fields}<button type="submit">Continue</button></form></body></html>`);
}

async function body(req) {
  let s = '';
  for await (const chunk of req) {
    s += chunk;
    if (s.length > 65536) {
      throw new Error('body too large');
    }
  }
  return new URLSearchParams(s);
}

// interaction handles /interaction/<uid>[/login|/confirm]; anything else goes to the provider.
async function interaction(req, res, uid, step) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) {
    return page(res, 400, 'Wrong interaction', '/', '', 'wrong interaction');
  }
  const { prompt, params, session } = details;
  if (req.method === 'GET' && !step) {
    if (prompt.name === 'login') {
      return page(res, 200, 'Log in', `/interaction/${uid}/login`,
        `<input name="identifier" value="${esc(params.login_hint || '')}"><input name="password" type="password">`);
    }
    return page(res, 200, `Allow ${params.client_id}?`, `/interaction/${uid}/confirm`,
      '<input type="hidden" name="decision" value="allow">');
  }
  if (req.method === 'POST' && step === 'login' && prompt.name === 'login') {
    const form = await body(req);
    const id = form.get('identifier') || '';
    if (!(await checkPassword(id, form.get('password') || ''))) {
      return page(res, 401, 'Log in', `/interaction/${uid}/login`,
        '<input name="identifier"><input name="password" type="password">', 'wrong identifier or password');
    }
    return provider.interactionFinished(req, res, { login: { accountId: id } }, { mergeWithLastSubmission: false });
  }
  if (req.method === 'POST' && step === 'confirm' && prompt.name === 'consent') {
    await body(req);
    const { details: missing } = prompt;
    let grant;
    if (details.grantId) {
      grant = await provider.Grant.find(details.grantId);
    } else {
      grant = new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    }
    if (missing.missingOIDCScope) {
      grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    }
    if (missing.missingOIDCClaims) {
      grant.addOIDCClaims(missing.missingOIDCClaims);
    }
    if (missing.missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
    }
    const grantId = await grant.save();
    grants.set(`${session.accountId} ${params.client_id}`, grantId);
    return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }
  return page(res, 400, 'Unexpected step', '/', '', `unexpected ${req.method} ${step || ''} at prompt ${prompt.name}`);
}

const interactionPath = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|confirm))?$/;

const server = http2.createSecureServer({
  allowHTTP1: true,
  key: fs.readFileSync(cfg.key),
  cert: fs.readFileSync(cfg.cert),
}, (req, res) => {
  const m = interactionPath.exec(req.url.split('?')[0]);
  if (!m) {
    return callback(req, res);
  }
  return interaction(req, res, m[1], m[2]).catch((err) => {
    if (!res.headersSent) {
      page(res, 400, 'Error', '/', '', err.message);
    }
  });
});
server.listen(cfg.port, '127.0.0.1', () => console.log(`listening on ${server.address().port}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
