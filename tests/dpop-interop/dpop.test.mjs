// DPoP (RFC 9449) against clients no one here wrote (issue 21 item 6): panva's
// `dpop` (raw proofs: `generateKeyPair`, `generateProof`) and `oauth4webapi` (a
// whole OAuth client: RFC 8414 discovery, its `DPoP` handle, the password grant
// through `genericTokenEndpointRequest`, `protectedResourceRequest`,
// `refreshTokenGrantRequest`), over real sockets, against the tutorial binary
// started here with DPOP=allowed, and once with DPOP=required.
//
//   cargo build -p tower-oauth2-password-examples --example tutorial --features dpop
//   cd tests/dpop-interop && npm ci && npm test
//
// TUTORIAL_BIN names the tutorial binary (default: the cargo target dir's debug
// build). The single-server scenarios run with an ES256 key and with an Ed25519
// key (both libraries name its proofs `Ed25519`, RFC 9864's fully-specified name).
//
// With REDIS_URL set (and the tutorial built with `--features dpop,redis`), two
// replicas on that Redis (TOKEN_STORE=redis, so the replay store is Redis too,
// under a key prefix of this run's own, deleted afterwards with redis-cli) must
// refuse on one a proof the other accepted.

import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as dpop from "dpop";
import * as oauth from "oauth4webapi";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const targetDir = process.env.CARGO_TARGET_DIR || path.join(root, "target");
const tutorialBin = process.env.TUTORIAL_BIN || path.join(targetDir, "debug/examples/tutorial");
// Generous: a debug build verifies Argon2id hashes (optimised even there) on a
// shared 2-core machine.
const WAIT = 30_000;

// The two key types RFC 9449 servers are asked for most, under the names both
// libraries give them (`Ed25519` is RFC 9864's fully-specified name for EdDSA
// with Ed25519, the only one these two libraries emit).
const ALGS = ["ES256", "Ed25519"];

const JOHNDOE = {
  username: "johndoe",
  email: "johndoe@example.com",
  full_name: "John Doe",
  disabled: false,
};

const children = [];

/** A port free on 127.0.0.1 right now (the tutorial reports ADDR as given). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Starts the tutorial with `env` on a free port; resolves to its base URL once
 * its metadata document answers. */
async function startTutorial(env) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const child = spawn(tutorialBin, [], {
    env: {
      ...process.env,
      ADDR: `127.0.0.1:${port}`,
      ISSUER: base,
      LOG: "off",
      TOKEN_STORE: "memory",
      REFRESH_TOKENS: "1",
      ...env,
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
  children.push(child);
  let exited = null;
  child.on("exit", (code) => (exited = code));
  child.on("error", (error) => (exited = error));
  const deadline = Date.now() + WAIT;
  while (Date.now() < deadline) {
    if (exited !== null) throw new Error(`${tutorialBin} exited: ${exited}`);
    try {
      const answer = await fetch(`${base}/.well-known/oauth-authorization-server`);
      if (answer.ok) return base;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${tutorialBin} did not answer within ${WAIT} ms`);
}

function stopAll() {
  for (const child of children) if (child.exitCode === null) child.kill("SIGINT");
}
after(stopAll);
process.on("exit", stopAll);

/** The `WWW-Authenticate` challenge a refused DPoP request must carry (§7.1). */
function assertDpopChallenge(response, error) {
  const challenge = response.headers.get("www-authenticate") ?? "";
  assert.match(challenge, /^DPoP /, `challenge: ${challenge}`);
  assert.match(challenge, new RegExp(`error="${error}"`), `challenge: ${challenge}`);
  assert.match(challenge, /algs="[^"]*ES256[^"]*"/, `challenge: ${challenge}`);
}

/** POST /token with the password grant and, when given, a `DPoP` proof. */
function passwordGrant(base, proof) {
  const headers = { "content-type": "application/x-www-form-urlencoded" };
  if (proof !== undefined) headers.dpop = proof;
  return fetch(`${base}/token`, {
    method: "POST",
    headers,
    body: new URLSearchParams({ grant_type: "password", username: "johndoe", password: "secret" }),
  });
}

/** oauth4webapi's view of the server: its RFC 8414 metadata, over plain http. */
async function discover(base) {
  const issuer = new URL(base);
  const response = await oauth.discoveryRequest(issuer, {
    algorithm: "oauth2", // RFC 8414's well-known path, not OpenID Connect's
    [oauth.allowInsecureRequests]: true,
  });
  return oauth.processDiscoveryResponse(issuer, response);
}

const insecure = { [oauth.allowInsecureRequests]: true };
// A public client: the password grant's first-party app (client_id is sent and ignored).
const client = { client_id: "interop" };

/** oauth4webapi's password grant at `as`'s token endpoint, with `DPoP`'s proof. */
function passwordGrantWith(as, DPoP) {
  return oauth.genericTokenEndpointRequest(
    as,
    client,
    oauth.None(),
    "password",
    { username: "johndoe", password: "secret" },
    { DPoP, ...insecure },
  );
}

/** oauth4webapi's refresh grant with `DPoP`'s proof. */
function refreshWith(as, refreshToken, DPoP) {
  return oauth.refreshTokenGrantRequest(as, client, oauth.None(), refreshToken, {
    DPoP,
    ...insecure,
  });
}

/** `GET /users/me` through oauth4webapi with `token` and `DPoP`'s proof. */
function meWith(base, token, DPoP) {
  return oauth.protectedResourceRequest(
    token,
    "GET",
    new URL("/users/me", base),
    new Headers(),
    null,
    { DPoP, ...insecure },
  );
}

// Both servers start before the tests are declared.
const allowedBase = await startTutorial({ DPOP: "allowed" });
const requiredBase = await startTutorial({ DPOP: "required" });
const allowedAs = await discover(allowedBase);
const requiredAs = await discover(requiredBase);

describe("DPOP=allowed", () => {
  const base = allowedBase;
  const as = allowedAs;

  test("the metadata advertises the proof algorithms", () => {
    const algs = as.dpop_signing_alg_values_supported;
    assert.ok(Array.isArray(algs), JSON.stringify(as));
    for (const alg of ["ES256", "EdDSA", ...ALGS]) {
      assert.ok(algs.includes(alg), JSON.stringify(algs));
    }
  });

  for (const alg of ALGS) {
    describe(`oauth4webapi, ${alg} key`, () => {
      test("login, /users/me, refresh, the new token, all with proofs", async () => {
        const keys = await oauth.generateKeyPair(alg);
        const DPoP = oauth.DPoP(client, keys);

        const login = await passwordGrantWith(as, DPoP);
        assert.equal(login.status, 200, await login.clone().text());
        assert.equal((await login.clone().json()).token_type, "DPoP");
        const tokens = await oauth.processGenericTokenEndpointResponse(as, client, login);
        assert.equal(tokens.token_type, "dpop");
        assert.ok(tokens.refresh_token, "REFRESH_TOKENS=1 issues a refresh token");

        const me = await meWith(base, tokens.access_token, DPoP);
        assert.equal(me.status, 200);
        assert.deepEqual(await me.json(), JOHNDOE);

        const refresh = await refreshWith(as, tokens.refresh_token, DPoP);
        assert.equal(refresh.status, 200, await refresh.clone().text());
        const renewed = await oauth.processRefreshTokenResponse(as, client, refresh);
        assert.equal(renewed.token_type, "dpop");
        assert.notEqual(renewed.access_token, tokens.access_token);
        assert.notEqual(renewed.refresh_token, tokens.refresh_token);

        const again = await meWith(base, renewed.access_token, DPoP);
        assert.equal(again.status, 200);
        assert.deepEqual(await again.json(), JOHNDOE);
      });

      test("a refresh with another key's proof is refused, and the owner's still works", async () => {
        const DPoP = oauth.DPoP(client, await oauth.generateKeyPair(alg));
        const thief = oauth.DPoP(client, await oauth.generateKeyPair(alg));
        const login = await passwordGrantWith(as, DPoP);
        const tokens = await oauth.processGenericTokenEndpointResponse(as, client, login);

        const stolen = await refreshWith(as, tokens.refresh_token, thief);
        assert.equal(stolen.status, 400);
        assert.equal((await stolen.json()).error, "invalid_dpop_proof");

        const owner = await refreshWith(as, tokens.refresh_token, DPoP);
        assert.equal(owner.status, 200, await owner.clone().text());
        assert.equal((await oauth.processRefreshTokenResponse(as, client, owner)).token_type, "dpop");
      });
    });

    describe(`dpop, ${alg} key`, () => {
      let keys;
      let token;
      before(async () => {
        keys = await dpop.generateKeyPair(alg);
      });

      test("login with a proof: a DPoP token", async () => {
        const proof = await dpop.generateProof(keys, `${base}/token`, "POST");
        const login = await passwordGrant(base, proof);
        const body = await login.json();
        assert.equal(login.status, 200, JSON.stringify(body));
        assert.equal(body.token_type, "DPoP");
        assert.equal(login.headers.get("cache-control"), "no-store");
        token = body.access_token;

        // The same proof again: refused (RFC 9449 §11.1), whoever sends it.
        const replay = await passwordGrant(base, proof);
        assert.equal(replay.status, 400);
        assert.equal((await replay.json()).error, "invalid_dpop_proof");
      });

      test("/users/me with a proof; the proof replayed; the token as Bearer", async () => {
        assert.ok(token, "the login test ran first");
        const url = `${base}/users/me`;
        const proof = await dpop.generateProof(keys, url, "GET", undefined, token);
        const headers = { authorization: `DPoP ${token}`, dpop: proof };

        const me = await fetch(url, { headers });
        assert.equal(me.status, 200);
        assert.deepEqual(await me.json(), JOHNDOE);

        const replay = await fetch(url, { headers });
        assert.equal(replay.status, 401);
        assertDpopChallenge(replay, "invalid_dpop_proof");

        const bearer = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
        assert.equal(bearer.status, 401);
        assert.match(bearer.headers.get("www-authenticate") ?? "", /^DPoP /);

        // A fresh proof still works: the refusals above did not spend the token.
        const fresh = await dpop.generateProof(keys, url, "GET", undefined, token);
        const still = await fetch(url, { headers: { authorization: `DPoP ${token}`, dpop: fresh } });
        assert.equal(still.status, 200);
      });

      test("a proof for another token (wrong ath) or another key is refused", async () => {
        assert.ok(token, "the login test ran first");
        const url = `${base}/users/me`;
        const wrongAth = await dpop.generateProof(keys, url, "GET", undefined, `${token}x`);
        const answer = await fetch(url, { headers: { authorization: `DPoP ${token}`, dpop: wrongAth } });
        assert.equal(answer.status, 401);
        assertDpopChallenge(answer, "invalid_dpop_proof");

        const other = await dpop.generateKeyPair(alg);
        const otherKey = await dpop.generateProof(other, url, "GET", undefined, token);
        const refused = await fetch(url, { headers: { authorization: `DPoP ${token}`, dpop: otherKey } });
        assert.equal(refused.status, 401);
        assert.match(refused.headers.get("www-authenticate") ?? "", /^DPoP /);
      });
    });
  }

  test("without a proof the login is Bearer, and Bearer works (allowed mode)", async () => {
    const login = await passwordGrant(base);
    const body = await login.json();
    assert.equal(login.status, 200, JSON.stringify(body));
    assert.equal(body.token_type.toLowerCase(), "bearer");
    const me = await fetch(`${base}/users/me`, {
      headers: { authorization: `Bearer ${body.access_token}` },
    });
    assert.equal(me.status, 200);
    assert.deepEqual(await me.json(), JOHNDOE);
  });
});

describe("DPOP=required", () => {
  const base = requiredBase;
  const as = requiredAs;

  test("a login without a proof is refused", async () => {
    const login = await passwordGrant(base);
    assert.equal(login.status, 400);
    assert.equal((await login.json()).error, "invalid_dpop_proof");
  });

  for (const alg of ALGS) {
    test(`oauth4webapi with an ${alg} key logs in and reads /users/me`, async () => {
      const DPoP = oauth.DPoP(client, await oauth.generateKeyPair(alg));
      const login = await passwordGrantWith(as, DPoP);
      assert.equal(login.status, 200, await login.clone().text());
      const tokens = await oauth.processGenericTokenEndpointResponse(as, client, login);
      assert.equal(tokens.token_type, "dpop");
      const me = await meWith(base, tokens.access_token, DPoP);
      assert.equal(me.status, 200);
      assert.deepEqual(await me.json(), JOHNDOE);
    });
  }
});

const redisUrl = process.env.REDIS_URL;

describe("two replicas on one Redis (REDIS_URL)", { skip: !redisUrl && "REDIS_URL is not set" }, () => {
  // The URL a load balancer in front of both would have: proofs name it, and
  // each replica compares them with it (DPOP_PUBLIC_URL), not with its own port.
  const publicUrl = "https://api.example.com";
  const prefix = `tower-oauth2-password-dpop-interop-${process.pid}-${Date.now()}:`;
  let replicas;
  before(async () => {
    const env = {
      DPOP: "allowed",
      DPOP_PUBLIC_URL: publicUrl,
      TOKEN_STORE: "redis",
      REDIS_URL: redisUrl,
      REDIS_PREFIX: prefix,
      REFRESH_TOKENS: "0",
    };
    replicas = [await startTutorial(env), await startTutorial(env)];
  });
  after(() => {
    // Every key of this run: tokens and remembered proofs.
    const scan = spawnSync("redis-cli", ["-u", redisUrl, "--scan", "--pattern", `${prefix}*`], {
      encoding: "utf8",
    });
    const keys = (scan.stdout ?? "").split("\n").filter(Boolean);
    if (keys.length > 0) spawnSync("redis-cli", ["-u", redisUrl, "del", ...keys]);
  });

  test("a proof accepted by one replica is refused by the other, both ways", async () => {
    const keys = await dpop.generateKeyPair("ES256");
    const proof = await dpop.generateProof(keys, `${publicUrl}/token`, "POST");
    const login = await passwordGrant(replicas[0], proof);
    const body = await login.json();
    assert.equal(login.status, 200, JSON.stringify(body));
    assert.equal(body.token_type, "DPoP");
    const replayedLogin = await passwordGrant(replicas[1], proof);
    assert.equal(replayedLogin.status, 400);
    assert.equal((await replayedLogin.json()).error, "invalid_dpop_proof");

    const token = body.access_token;
    for (const [first, second] of [replicas, [...replicas].reverse()]) {
      const me = await dpop.generateProof(keys, `${publicUrl}/users/me`, "GET", undefined, token);
      const headers = { authorization: `DPoP ${token}`, dpop: me };
      const accepted = await fetch(`${first}/users/me`, { headers });
      const why = `${accepted.headers.get("www-authenticate")} ${await accepted.clone().text()}`;
      assert.equal(accepted.status, 200, why);
      assert.deepEqual(await accepted.json(), JOHNDOE);
      const replayed = await fetch(`${second}/users/me`, { headers });
      assert.equal(replayed.status, 401);
      assertDpopChallenge(replayed, "invalid_dpop_proof");
    }
  });
});
