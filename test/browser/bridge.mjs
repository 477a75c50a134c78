// The Omni-Channel bridge end to end in Debian's Chromium, against `omnipresence demo`:
// a click in Ana's Salesforce console reaches Genesys; a Genesys change reaches the widget; no
// echo bounces back; two tabs make one bridge; a push channel dropped while a change is
// pending still delivers it; and the time each way, p50/p99 over --rounds changes.
//
//   node bridge.mjs --service URL --salesforce URL --genesys URL [--rounds 200]
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';

const args = Object.fromEntries(process.argv.slice(2).reduce((a, v, i, all) => (v.startsWith('--') ? [...a, [v.slice(2), all[i + 1]]] : a), []));
const { service, salesforce: sf, genesys: gc } = args;
const rounds = Number(args.rounds || 20);
const email = args.user || 'ana@example.com';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function gcPresence() {
  const users = await (await fetch(`${gc}/_sim/users`)).json();
  return (users.entities || users).find((u) => u.email === email).presence;
}
async function setGC(presence) {
  const res = await fetch(`${gc}/_sim/presence`, { method: 'POST', body: JSON.stringify({ user: email, presence }) });
  assert.ok(res.ok, `genesys control: ${res.status}`);
}
async function until(what, fn, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}
const current = (page) => page.textContent('[data-omni-current]');
function pct(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const context = await browser.newContext();
  const console1 = `${sf}/console/${encodeURIComponent(email)}?service=${encodeURIComponent(service)}`;
  const tab1 = await context.newPage();
  await tab1.goto(console1);
  await tab1.waitForSelector('#utility[data-bridge-connected="true"]', { timeout: 15000 });

  // A click in the widget reaches Genesys (sf AvailableforVoice -> gc On Queue).
  await tab1.click('[data-status-api-name="AvailableforVoice"]');
  await until('Genesys On Queue', async () => (await gcPresence()) === 'On Queue');

  // A Genesys change reaches the widget (gc Break -> sf Break), through a bridge command.
  await setGC('Break');
  await tab1.waitForFunction(() => document.querySelector('[data-omni-current]').textContent === 'Break');

  // No echo bounces back: both sides stay put and the service sees them in sync.
  await sleep(1500);
  assert.equal(await gcPresence(), 'Break', 'Genesys moved after the widget changed: an echo bounced');
  assert.equal(await current(tab1), 'Break');
  const agent = await (await fetch(`${service}/api/v1/agents/${encodeURIComponent(email)}`)).json();
  assert.equal(agent.systems.sf.observed, 'Break');
  assert.equal(agent.systems.gc.observed, 'Break');
  assert.ok(agent.systems.sf.in_sync && agent.systems.gc.in_sync, `not in sync: ${JSON.stringify(agent.systems)}`);

  // Two tabs make one bridge.
  const tab2 = await context.newPage();
  await tab2.goto(console1);
  await tab2.waitForSelector('#utility[data-bridge-leader]');
  await sleep(2000);
  const leaders = [await tab1.getAttribute('#utility', 'data-bridge-leader'), await tab2.getAttribute('#utility', 'data-bridge-leader')];
  assert.deepEqual(leaders.filter((l) => l === 'true').length, 1, `leaders: ${leaders}`);

  // A dropped push channel: the browser goes offline, Genesys changes meanwhile (the command
  // waits at the service), the browser comes back and the pending command lands.
  await context.setOffline(true);
  await sleep(500);
  await setGC('Meal'); // -> Salesforce Lunch
  await sleep(1000);
  await context.setOffline(false);
  await tab1.waitForFunction(() => document.querySelector('[data-omni-current]').textContent === 'Lunch', null, { timeout: 45000 });

  // Latency each way, with one console open as an agent has it: widget click -> Genesys, and
  // Genesys -> widget.
  await tab2.close();
  await tab1.waitForSelector('#utility[data-bridge-leader="true"][data-bridge-connected="true"]', { timeout: 20000 });
  const toGC = [];
  const toSF = [];
  const cycle = [['AvailableforVoice', 'On Queue'], ['Break', 'Break']];
  for (let i = 0; i < rounds; i++) {
    const [sfStatus, gcStatus] = cycle[i % 2];
    let t = Date.now();
    await tab1.click(`[data-status-api-name="${sfStatus}"]`);
    await until(`Genesys ${gcStatus}`, async () => (await gcPresence()) === gcStatus);
    toGC.push(Date.now() - t);
    const [gcNext, sfNext] = i % 2 ? ['On Queue', 'AvailableforVoice'] : ['Meal', 'Lunch'];
    t = Date.now();
    await setGC(gcNext);
    await tab1.waitForFunction((s) => document.querySelector('[data-omni-current]').textContent === s, sfNext);
    toSF.push(Date.now() - t);
  }
  console.log(`PASS bridge: click->Genesys p50 ${pct(toGC, 50)} ms p99 ${pct(toGC, 99)} ms; Genesys->widget p50 ${pct(toSF, 50)} ms p99 ${pct(toSF, 99)} ms (${rounds} rounds)`);
} finally {
  await browser.close();
}
