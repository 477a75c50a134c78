// Drives the Salesforce simulator's agent console in Debian's Chromium: a click in the
// Omni-Channel widget changes the agent's status in the org and fires the Omni events the
// Lightning console fires; a change made elsewhere shows in the widget with its reason.
//
//   node console.mjs --url http://127.0.0.1:PORT --user ana@example.com [--keyed URL of a simulator with a bridge key]
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';

const args = Object.fromEntries(process.argv.slice(2).reduce((a, v, i, all) => (v.startsWith('--') ? [...a, [v.slice(2), all[i + 1]]] : a), []));
const base = args.url;
const user = args.user || 'ana@example.com';
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

// Playwright's launch starts headless with a fresh, temporary profile of its own.
const browser = await chromium.launch({
  executablePath,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage();
  await page.goto(`${base}/console/${encodeURIComponent(user)}`);
  await page.waitForFunction(() => window.omniConsole && document.querySelectorAll('[data-status-api-name]').length > 1);
  await page.evaluate(() => {
    window.seen = [];
    for (const name of ['lightning:omniChannelStatusChanged', 'lightning:omniChannelLoginSuccess', 'lightning:omniChannelLogout']) {
      window.omniConsole.on(name, (p) => window.seen.push({ name, p }));
    }
  });

  // A click logs the agent in with that status.
  await page.click('[data-status-api-name="AvailableforVoice"]');
  await page.waitForFunction(() => document.querySelector('[data-omni-current]').textContent === 'AvailableforVoice');
  const presence = await (await fetch(`${base}/_sim/users/${encodeURIComponent(user)}/presence`)).json();
  assert.equal(presence.status, 'AvailableforVoice', 'the org did not record the click');
  const seen = await page.evaluate(() => window.seen);
  const changed = seen.find((e) => e.name === 'lightning:omniChannelStatusChanged');
  assert.ok(seen.some((e) => e.name === 'lightning:omniChannelLoginSuccess'), 'no LoginSuccess event');
  assert.ok(changed, 'no StatusChanged event');
  assert.equal(changed.p.statusApiName, 'AvailableforVoice');
  assert.equal(changed.p.reason, 'OmniLoginStatusChange');
  assert.equal(typeof changed.p.channels, 'string', 'channels must be a JSON string, as in Salesforce');
  assert.equal(JSON.parse(changed.p.channels)[0].developerName, 'sfdc_phone');

  // The toolkit, as a utility-bar component calls it.
  const breakId = await page.getAttribute('[data-status-api-name="Break"]', 'data-status-id');
  const res = await page.evaluate((id) => window.omniConsole.toolkit.setServicePresenceStatus({ statusId: id }), breakId);
  assert.equal(res.statusApiName, 'Break');
  await page.waitForFunction(() => window.seen.some((e) => e.p.statusApiName === 'Break' && e.p.reason === 'OmniToolkitStatusChange'));

  // A change made elsewhere (a supervisor) reaches the widget with its reason.
  await fetch(`${base}/_sim/users/${encodeURIComponent(user)}/status`, { method: 'POST', body: JSON.stringify({ status: 'Lunch', reason: 'OmniSupervisorStatusChange' }) });
  await page.waitForFunction(() => document.querySelector('[data-omni-current]').textContent === 'Lunch');
  await page.waitForFunction(() => window.seen.some((e) => e.p.statusApiName === 'Lunch' && e.p.reason === 'OmniSupervisorStatusChange'));

  // Offline logs out.
  await page.click('[data-status-api-name="Offline"]');
  await page.waitForFunction(() => document.querySelector('[data-omni-current]').textContent === 'Offline');
  await page.waitForFunction(() => window.seen.some((e) => e.name === 'lightning:omniChannelLogout'));
  // The toolkit takes 15-character ids, as Salesforce's examples pass them.
  const err = await page.evaluate((id) => window.omniConsole.toolkit.setServicePresenceStatus({ statusId: id + 'AAA' }).then(() => null, (e) => e.message), breakId);
  assert.match(err, /15-character/);

  // A supervisor's logout reaches the widget with its reason.
  await page.click('[data-status-api-name="Break"]');
  await page.waitForFunction(() => document.querySelector('[data-omni-current]').textContent === 'Break');
  await fetch(`${base}/_sim/users/${encodeURIComponent(user)}/status`, { method: 'POST', body: JSON.stringify({ status: 'Offline', reason: 'OmniSupervisorLogout' }) });
  await page.waitForFunction(() => window.seen.some((e) => e.name === 'lightning:omniChannelLogout' && e.p.reason === 'OmniSupervisorLogout'));

  // The bridge's panel says what keeps it from working: no token (this org has no bridge
  // certificate), or no service to reach (in an org that has one).
  const noToken = await browser.newPage();
  await noToken.goto(`${base}/console/${encodeURIComponent(user)}?service=${encodeURIComponent('http://127.0.0.1:9')}`);
  await noToken.waitForFunction(() => /certificate/.test(document.getElementById('utility').textContent));
  if (args.keyed) {
    const noService = await browser.newPage();
    await noService.goto(`${args.keyed}/console/${encodeURIComponent(user)}?service=${encodeURIComponent('http://127.0.0.1:9')}&security=locker`);
    await noService.waitForFunction(() => /cannot reach the service/.test(document.getElementById('utility').textContent), null, { timeout: 20000 });
  }
  console.log('PASS console: click, toolkit, supervisor change and logout, the bridge panel\'s problems');
} finally {
  await browser.close();
}
