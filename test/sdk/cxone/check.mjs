// Runs NICE's CXone Agent SDK (bundled into page.js's page with esbuild) in headless Chromium
// against the CXone simulator: it logs in (authorization code with PKCE, id_token checked
// against the JWKS, API discovery, whoami), starts the agent's session, sets Available and
// Unavailable with a reason, receives the AgentState events of those changes and of one the
// simulator makes, and joins the session from a second tab. The SDK calls some fixed hostnames
// (https://api-{cluster}.{acdDomain}); the harness, not the SDK, sends those to the simulator.
//
//   node check.mjs --sim http://127.0.0.1:PORT --agent ana@example.com
import { chromium } from 'playwright-core';
import * as esbuild from 'esbuild';
import assert from 'node:assert/strict';

const args = Object.fromEntries(process.argv.slice(2).reduce((a, v, i, all) => (v.startsWith('--') ? [...a, [v.slice(2), all[i + 1]]] : a), []));
const sim = args.sim;
const agent = args.agent || 'ana@example.com';
const clientId = args.client || 'demo-client';
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
// The page is served at a path of the simulator's origin (the harness answers it), as the agent
// application would be served next to its API: loopback pages may call loopback APIs.
const app = `${sim}/agent-app`;

const bundle = await esbuild.build({
  entryPoints: [new URL('./page.js', import.meta.url).pathname], bundle: true, write: false, format: 'iife',
  platform: 'browser', target: 'es2020', logLevel: 'error',
  define: { 'process.env.NODE_ENV': '"production"', global: 'window' },
});
const script = bundle.outputFiles[0].text;
const html = '<!doctype html><html><head><meta charset="utf-8"><title>CXone Agent SDK check</title></head>' +
  '<body><script src="/agent-app/page.bundle.js"></script></body></html>';

const browser = await chromium.launch({
  executablePath,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const rewritten = [];
async function newContext() {
  const context = await browser.newContext();
  await context.addInitScript((cfg) => { window.CFG = cfg; }, { sim, clientId, agent });
  await context.route((u) => u.href.startsWith(app + "/"), (route) => {
    const path = new URL(route.request().url()).pathname;
    if (path.endsWith('/page.bundle.js')) return route.fulfill({ contentType: 'text/javascript', body: script });
    return route.fulfill({ contentType: 'text/html', body: html });
  });
  // The simulator's answer to the authorization request is a redirect back to the page, which
  // Playwright would not route; the harness follows it with a client-side redirect instead.
  await context.route((u) => u.href.startsWith(sim + '/auth/authorize'), async (route) => {
    const response = await route.fetch({ maxRedirects: 0 });
    const location = response.headers().location;
    if (!location) return route.fulfill({ response });
    await route.fulfill({ contentType: 'text/html', body: `<script>location.replace(${JSON.stringify(location)})</script>` });
  });
  // The get-next-event worker loads rxjs from a CDN; the harness serves the same release.
  await context.route('https://cdnjs.cloudflare.com/ajax/libs/rxjs/6.6.7/rxjs.umd.min.js', (route) =>
    route.fulfill({ contentType: 'text/javascript', path: new URL('./node_modules/rxjs-umd/bundles/rxjs.umd.min.js', import.meta.url).pathname }));
  // The SDK's fixed hosts of the NICE cloud go to the simulator.
  await context.route(/^https:\/\/[^/]*(niceincontact|nice-incontact|nicecxone)\.com\//, async (route) => {
    const u = new URL(route.request().url());
    const to = sim + u.pathname + u.search;
    rewritten.push(route.request().method() + ' ' + u.host + u.pathname);
    const response = await route.fetch({ url: to });
    const headers = { ...response.headers(), 'access-control-allow-origin': sim, 'access-control-allow-credentials': 'true' };
    await route.fulfill({ response, headers });
  });
  return context;
}

async function waitState(page, pred, what) {
  try {
    await page.waitForFunction(pred, null, { timeout: 20000 });
  } catch (e) {
    const states = await page.evaluate(() => window.states);
    throw new Error(`no AgentState event ${what}; seen: ${JSON.stringify(states)}`);
  }
}

async function simUser() {
  const users = await (await fetch(`${sim}/_sim/users`)).json();
  return users.find((u) => u.email === agent);
}

try {
  const context = await newContext();
  const page = await context.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(m.type() + ': ' + m.text()));
  page.on('pageerror', (e) => logs.push('pageerror: ' + e.message));
  page.on('response', (r) => { if (r.status() >= 400) logs.push('HTTP ' + r.status() + ' ' + r.request().method() + ' ' + r.url()); });
  try {
    await page.goto(`${app}/page.html`);
    await page.waitForFunction(() => window.sdkReady);
    await Promise.all([page.waitForURL(/code=/), page.evaluate(() => window.sdk.login())]);
    await page.waitForFunction(() => window.sdkReady);
    const login = await page.evaluate(() => window.sdk.finishLogin());
    assert.ok(login.token, 'no access token');
    const codes = await page.evaluate(() => window.sdk.unavailableCodes());
    assert.ok(codes.length > 0, 'no unavailable codes for the agent team');

    const sessionId = await page.evaluate(() => window.sdk.startSession('+15551230001'));
    assert.ok(sessionId, 'no session id');
    assert.equal((await simUser()).state, 'Unavailable', 'starting the session did not log the agent in');

    await page.evaluate(() => window.sdk.setState('Available', ''));
    await waitState(page, () => window.states.some((s) => s.currentState && s.currentState.state === 'available'), 'for Available');
    assert.equal((await simUser()).status, 'Available');

    await page.evaluate(() => window.sdk.setState('Unavailable', 'Lunch'));
    await waitState(page, () => window.states.some((s) => s.currentState && s.currentState.state === 'unavailable' && s.currentState.reason === 'Lunch'), 'for Unavailable/Lunch');
    assert.equal((await simUser()).status, 'Lunch');

    // A change made elsewhere (the simulator plays the ACD) reaches the SDK too.
    await fetch(`${sim}/_sim/users/${encodeURIComponent(agent)}/status`, { method: 'POST', body: JSON.stringify({ status: 'Break' }) });
    await waitState(page, () => window.states.some((s) => s.currentState && s.currentState.reason === 'Break'), 'for Break set in the simulator');

    // A second tab of the same agent joins the running session.
    const other = await (await newContext()).newPage();
    await other.goto(`${app}/page.html`);
    await other.waitForFunction(() => window.sdkReady);
    await Promise.all([other.waitForURL(/code=/), other.evaluate(() => window.sdk.login())]);
    await other.waitForFunction(() => window.sdkReady);
    await other.evaluate(() => window.sdk.finishLogin());
    const joined = await other.evaluate(() => window.sdk.joinSession());
    assert.ok(joined && joined !== sessionId, 'joining gave no session of its own');
    await other.evaluate(() => window.sdk.setState('Available', ''));
    await waitState(page, () => window.states.filter((s) => s.currentState && s.currentState.state === 'available').length >= 2, 'in the first tab for the joined tab\'s Available');

    const last = await page.evaluate(() => window.states[window.states.length - 1]);
    console.log(JSON.stringify({ ok: true, sessionId, joined, codes, events: (await page.evaluate(() => window.states)).length, last, rewritten: [...new Set(rewritten)] }));
  } catch (e) {
    console.log(logs.slice(-60).join('\n'));
    throw e;
  }
} finally {
  await browser.close();
}
