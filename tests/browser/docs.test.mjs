// FastAPI's "See it in action", in a real browser: headless Chromium opens the
// docs example's Swagger UI, clicks "Authorize", logs in, and runs "Try it out" on
// GET /users/me, as johndoe, as alice (disabled), and logged out. Once straight at
// the example, once through a reverse proxy that serves it under /api and strips
// the prefix (started with PATH_PREFIX=/api, as its docs say).
//
//   cargo build --example docs --features utoipa
//   cd tests/browser && npm ci && npm test
//
// DOCS_BIN names the example binary (default: the cargo target dir's);
// CHROMIUM the browser (default /usr/bin/chromium). Screenshots go to
// target/browser/.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const targetDir = process.env.CARGO_TARGET_DIR || path.join(root, "target");
const docsBin = process.env.DOCS_BIN || path.join(targetDir, "debug/examples/docs");
const shots = path.join(targetDir, "browser");
// Generous: a debug build verifies Argon2id hashes while the browser waits.
const WAIT = 30_000;

const children = [];
let browser;
let proxy;

/** Starts the example on a free port; resolves to its base URL. */
function startExample(env) {
  return new Promise((resolve, reject) => {
    const child = spawn(docsBin, [], {
      env: { ...process.env, ADDR: "127.0.0.1:0", LOG: "off", ...env },
      stdio: ["ignore", "pipe", "inherit"],
    });
    children.push(child);
    child.on("error", reject);
    child.on("exit", (code) => reject(new Error(`${docsBin} exited with ${code}`)));
    let out = "";
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const found = out.match(/listening on (http:\/\/[0-9.:]+)/);
      if (found) resolve(found[1]);
    });
  });
}

/** A reverse proxy serving `upstream` under `prefix`, which it strips. */
function startProxy(prefix, upstream) {
  const target = new URL(upstream);
  const server = http.createServer((request, response) => {
    const url = request.url;
    if (url !== prefix && !url.startsWith(`${prefix}/`) && !url.startsWith(`${prefix}?`)) {
      response.writeHead(404).end("not under the prefix");
      return;
    }
    const forwarded = http.request(
      {
        host: target.hostname,
        port: target.port,
        method: request.method,
        path: url.slice(prefix.length) || "/",
        headers: { ...request.headers, "x-forwarded-prefix": prefix },
      },
      (answer) => {
        response.writeHead(answer.statusCode, answer.headers);
        answer.pipe(response);
      },
    );
    forwarded.on("error", () => response.writeHead(502).end());
    request.pipe(forwarded);
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      proxy = server;
      resolve(`http://127.0.0.1:${server.address().port}${prefix}`);
    });
  });
}

before(async () => {
  mkdirSync(shots, { recursive: true });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    // CI runs as root, where Chromium's sandbox cannot start; containers often
    // have a small /dev/shm.
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
});

after(async () => {
  await browser?.close();
  proxy?.close();
  for (const child of children) {
    child.removeAllListeners("exit");
    child.kill("SIGINT");
  }
});

/** Opens the "Authorize" dialog and logs in with the password flow. */
async function logIn(page, username, password, screenshot) {
  await page.locator(".auth-wrapper .btn.authorize").click();
  const dialog = page.locator(".modal-ux");
  await dialog.locator("#oauth_username").fill(username);
  await dialog.locator("#oauth_password").fill(password);
  if (screenshot) await dialog.screenshot({ path: screenshot });
  await dialog.locator(".auth-btn-wrapper .btn.authorize").click();
  // Logged in: the dialog offers "Logout" instead.
  await dialog.locator(".auth-btn-wrapper .btn.authorize", { hasText: "Logout" }).waitFor();
  await dialog.locator(".btn-done").click();
}

async function logOut(page) {
  await page.locator(".auth-wrapper .btn.authorize").click();
  const dialog = page.locator(".modal-ux");
  await dialog.locator(".auth-btn-wrapper .btn.authorize", { hasText: "Logout" }).click();
  await dialog.locator(".btn-done").click();
}

/** Executes the open "Try it out" of `operation`; resolves to [status, body]. */
async function execute(page, operation) {
  const responses = operation.locator(".live-responses-table");
  // A fresh result each time: clear the previous one first.
  const clear = operation.locator(".btn-clear");
  if (await clear.isVisible()) await clear.click();
  await operation.locator(".btn.execute").click();
  const status = responses.locator(".response .response-col_status").first();
  await status.waitFor({ timeout: WAIT });
  const body = responses.locator(".response-col_description .microlight").first();
  return [(await status.innerText()).trim(), await body.innerText()];
}

async function walkthrough(base, name) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  page.setDefaultTimeout(WAIT);
  const tokenRequests = [];
  const elsewhere = [];
  page.on("request", (request) => {
    // Everything the page loads comes from the app: no CDN, no validator badge.
    if (!request.url().startsWith(new URL(base).origin + "/")) elsewhere.push(request.url());
    if (request.method() === "POST" && request.url().endsWith("/token")) {
      tokenRequests.push({ url: request.url(), headers: request.headers() });
    }
  });
  try {
    await page.goto(`${base}/docs`);
    await page.locator(".info .title", { hasText: "tower-oauth2-password tutorial" }).waitFor();

    await logIn(page, "johndoe", "secret", path.join(shots, `${name}-authorize.png`));
    const me = page.locator(".opblock-get", { has: page.locator('[data-path="/users/me"]') });
    await me.locator(".opblock-summary").click();
    await me.locator(".try-out__btn").click();
    let [status, body] = await execute(page, me);
    assert.equal(status, "200", body);
    assert.equal(JSON.parse(body).username, "johndoe");
    assert.equal(JSON.parse(body).email, "johndoe@example.com");
    await page.screenshot({ path: path.join(shots, `${name}-johndoe.png`), fullPage: true });
    // The operation down to the server's answer: the README's picture.
    const top = await me.boundingBox();
    const answer = await me.locator(".live-responses-table .response").first().boundingBox();
    await page.screenshot({
      path: path.join(shots, `${name}-users-me.png`),
      fullPage: true,
      clip: { x: top.x, y: top.y, width: top.width, height: answer.y + answer.height - top.y },
    });

    // Swagger UI's token request: to the documented tokenUrl, through the prefix,
    // with its default client authentication (an empty HTTP Basic pair).
    assert.equal(tokenRequests.length, 1);
    assert.equal(tokenRequests[0].url, `${base}/token`);
    assert.equal(tokenRequests[0].headers.authorization, "Basic Og==");

    await logOut(page);
    await logIn(page, "alice", "secret2");
    [status, body] = await execute(page, me);
    assert.equal(status, "400", body);
    assert.deepEqual(JSON.parse(body), { detail: "Inactive user" });

    await logOut(page);
    [status, body] = await execute(page, me);
    assert.equal(status, "401", body);
    assert.deepEqual(JSON.parse(body), { detail: "Not authenticated" });
    await page.screenshot({ path: path.join(shots, `${name}-logged-out.png`), fullPage: true });
    assert.deepEqual(elsewhere, []);
  } catch (error) {
    await page.screenshot({ path: path.join(shots, `${name}-failure.png`), fullPage: true });
    throw error;
  } finally {
    await page.close();
  }
}

test("Swagger UI walkthrough, served at the root", async () => {
  await walkthrough(await startExample({}), "root");
});

test("Swagger UI walkthrough, behind a proxy serving it under /api", async () => {
  const upstream = await startExample({ PATH_PREFIX: "/api" });
  await walkthrough(await startProxy("/api", upstream), "prefix");
});
