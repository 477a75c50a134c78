// The Omni-Channel bridge end to end in Debian's Chromium, against `omnipresence demo`:
// a click in Ana's Salesforce console reaches Genesys; a Genesys change reaches the widget; no
// echo bounces back; two tabs make one bridge, and a leading tab that is frozen (announced or
// not) neither applies a change twice nor loses one; a push channel dropped while a change is
// pending still delivers it; and the time each way, p50/p99 over --rounds changes.
//
// With --security locker the console loads the bridge as Lightning Locker does (no Web Locks,
// no BroadcastChannel: a lease and storage events), else as Lightning Web Security does.
//
//   node bridge.mjs --service URL --salesforce URL --genesys URL [--rounds 200] [--security lws|locker]
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';

const args = Object.fromEntries(process.argv.slice(2).reduce((a, v, i, all) => (v.startsWith('--') ? [...a, [v.slice(2), all[i + 1]]] : a), []));
const { service, salesforce: sf, genesys: gc } = args;
const rounds = Number(args.rounds || 20);
const email = args.user || 'ana@example.com';
const security = args.security || 'lws';
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
  const console1 = `${sf}/console/${encodeURIComponent(email)}?service=${encodeURIComponent(service)}&security=${security}`;
  const tab1 = await context.newPage();
  await tab1.goto(console1);
  await tab1.waitForSelector('#utility[data-bridge-connected="true"]', { timeout: 15000 });
  assert.equal(await tab1.getAttribute('#utility', 'data-bridge-leadership'), security === 'locker' ? 'lease' : 'web-locks');

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

  // Frozen tabs. Chrome announces a freeze with the page's 'freeze' event, then stops it; a page
  // may also stop without a word. The debugger's pause stands in for the stop: none of the
  // page's scripts runs until it resumes, while the network keeps delivering to it.
  const leadingTab = async () => ((await tab1.getAttribute('#utility', 'data-bridge-leader')) === 'true' ? [tab1, tab2] : [tab2, tab1]);
  const calls = (page) => page.evaluate(() => window.omniToolkitCalls.length);
  async function pause(page, announce) {
    if (announce) await page.evaluate(() => document.dispatchEvent(new Event('freeze')));
    const cdp = await context.newCDPSession(page);
    await cdp.send('Debugger.enable');
    // Debugger.pause stops the page at its next statement: make sure there is one, and that the
    // page is stopped before the test goes on (an idle page would otherwise run on).
    const paused = new Promise((resolve) => cdp.once('Debugger.paused', resolve));
    await cdp.send('Debugger.pause');
    cdp.send('Runtime.evaluate', { expression: 'void 0' }).catch(() => {}); // answered after the resume
    await Promise.race([paused, sleep(5000).then(() => { throw new Error('the page did not stop'); })]);
    return async () => {
      await cdp.send('Debugger.resume');
      await cdp.send('Debugger.disable');
      await cdp.detach();
      await page.evaluate(() => document.dispatchEvent(new Event('resume')));
    };
  }
  async function oneLeader() {
    await until('one leading tab', async () => {
      const l = [await tab1.getAttribute('#utility', 'data-bridge-leader'), await tab2.getAttribute('#utility', 'data-bridge-leader')];
      return l.filter((x) => x === 'true').length === 1;
    });
  }
  {
    // Announced: the frozen leader hands over at once, the other tab applies the change.
    const [lead, stand] = await leadingTab();
    const [leadCalls, standCalls] = [await calls(lead), await calls(stand)];
    const resume = await pause(lead, true);
    await stand.waitForSelector('#utility[data-bridge-leader="true"][data-bridge-connected="true"]', { timeout: 5000 });
    await setGC('Meal'); // -> Salesforce Lunch
    await stand.waitForFunction(() => document.querySelector('[data-omni-current]').textContent === 'Lunch');
    await resume();
    await sleep(2000);
    await oneLeader();
    assert.equal(await calls(lead), leadCalls, 'the frozen tab applied a command');
    assert.equal(await calls(stand), standCalls + 1, 'the change was not applied exactly once');
  }
  {
    // Unannounced: the stopped leader's stream receives the command; the other tab takes the
    // lead once the leader's record runs out, applies it; the leader, resumed, applies nothing.
    const [lead, stand] = await leadingTab();
    const [leadCalls, standCalls] = [await calls(lead), await calls(stand)];
    const resume = await pause(lead, false);
    const t = Date.now();
    await setGC('Break');
    await stand.waitForFunction(() => document.querySelector('[data-omni-current]').textContent === 'Break', null, { timeout: 20000 });
    const took = Date.now() - t;
    await resume();
    await sleep(2000);
    await oneLeader();
    assert.equal(await calls(lead), leadCalls, 'the stopped tab applied the command it had received');
    assert.equal(await calls(stand), standCalls + 1, 'the change was not applied exactly once');
    console.log(`stopped leader replaced and the command applied in ${took} ms`);
  }
  {
    // A change the agent makes in the standing-by tab while the leader is stopped is kept in
    // the shared outbox and reaches Genesys when the leader runs again.
    const [lead, stand] = await leadingTab();
    const resume = await pause(lead, false);
    await stand.click('[data-status-api-name="AvailableforVoice"]');
    await stand.waitForFunction(() => document.querySelector('[data-omni-current]').textContent === 'AvailableforVoice');
    await sleep(1000);
    await resume();
    await until('Genesys On Queue from the standby\'s change', async () => (await gcPresence()) === 'On Queue', 20000);
    await oneLeader();
  }

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
  console.log(`PASS bridge (${security}): click->Genesys p50 ${pct(toGC, 50)} ms p99 ${pct(toGC, 99)} ms; Genesys->widget p50 ${pct(toSF, 50)} ms p99 ${pct(toSF, 99)} ms (${rounds} rounds)`);
} finally {
  await browser.close();
}
