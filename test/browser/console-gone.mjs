// Agents' consoles going away, in Debian's Chromium, against `sim salesforce`, `sim genesys`
// and `serve` wired the way an operator wires them (the org's bridge key in the simulator, its
// certificate in the service), with a policy whose on_disconnect sets Genesys Offline once a
// console has been gone for 30 s. Ana and Bo work in one browser (one localStorage), with the
// bridge loaded as Lightning Locker loads it. Bo closes his console: Genesys shows him Offline
// after 30 s. Ana reloads hers: nothing happens. Neither console ever touches the other's state.
//
//   node console-gone.mjs --service URL --salesforce URL --genesys URL
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';

const args = Object.fromEntries(process.argv.slice(2).reduce((a, v, i, all) => (v.startsWith('--') ? [...a, [v.slice(2), all[i + 1]]] : a), []));
const { service, salesforce: sf, genesys: gc } = args;
const after = 30000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, fn, ms = 15000) {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}
async function gcPresence(email) {
  const users = await (await fetch(`${gc}/_sim/users`)).json();
  return (users.entities || users).find((u) => u.email === email).presence;
}
async function consoles() {
  const body = await (await fetch(`${service}/api/v1/consoles`)).json();
  return body.systems[0].consoles;
}
async function userId(email) {
  return (await (await fetch(`${sf}/_sim/users/${encodeURIComponent(email)}/presence`)).json()).user_id;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const context = await browser.newContext();
  const open = async (email) => {
    const page = await context.newPage();
    await page.goto(`${sf}/console/${encodeURIComponent(email)}?service=${encodeURIComponent(service)}&security=locker`);
    await page.waitForSelector('#utility[data-bridge-leader="true"][data-bridge-connected="true"]', { timeout: 15000 });
    return page;
  };
  const ana = await open('ana@example.com');
  const bo = await open('bo@example.com');
  for (const [page, email] of [[ana, 'ana@example.com'], [bo, 'bo@example.com']]) {
    await page.click('[data-status-api-name="AvailableforVoice"]');
    await until(`Genesys On Queue for ${email}`, async () => (await gcPresence(email)) === 'On Queue');
  }
  // One browser, two users: each user's bridge leads its own state, under its own keys.
  const [anaId, boId] = [await userId('ana@example.com'), await userId('bo@example.com')];
  const keys = await ana.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('omnipresence.')));
  assert.ok(keys.length > 0 && keys.every((k) => k.includes(anaId.slice(0, 15)) || k.includes(boId.slice(0, 15))), `unscoped keys: ${keys}`);
  assert.ok(keys.some((k) => k.includes(anaId.slice(0, 15))) && keys.some((k) => k.includes(boId.slice(0, 15))), `keys: ${keys}`);
  await until('both consoles connected at the service', async () => (await consoles()).filter((c) => c.connected).length === 2);

  // Bo closes his console; Ana reloads hers.
  const closed = Date.now();
  await bo.close({ runBeforeUnload: false });
  await ana.reload();
  await ana.waitForSelector('#utility[data-bridge-leader="true"][data-bridge-connected="true"]', { timeout: 15000 });
  await until('Bo\'s console gone at the service', async () => (await consoles()).some((c) => c.user === boId && !c.connected && c.reason === 'closed'));
  await until('Genesys Offline for Bo', async () => (await gcPresence('bo@example.com')) === 'Offline', after + 20000);
  const took = Date.now() - closed;
  assert.ok(took >= after - 1000, `Bo was set Offline ${took} ms after closing, before on_disconnect's after`);
  const explain = await (await fetch(`${service}/api/v1/agents/bo@example.com/explain?format=text`)).text();
  assert.match(explain, /console_disconnected \(closed\)/);
  assert.match(explain, /on_disconnect/);

  // Ana's reload counted for nothing.
  await sleep(2000);
  assert.equal(await gcPresence('ana@example.com'), 'On Queue');
  const anaConsole = (await consoles()).find((c) => c.user === anaId);
  assert.ok(anaConsole.connected, `Ana's console: ${JSON.stringify(anaConsole)}`);
  const anaExplain = await (await fetch(`${service}/api/v1/agents/ana@example.com/explain?format=text`)).text();
  assert.doesNotMatch(anaExplain, /console_disconnected/);
  console.log(`PASS consoles: closed -> Genesys Offline after ${took} ms (on_disconnect after ${after} ms); a reload changed nothing; two users in one browser kept apart`);
} finally {
  await browser.close();
}
