// The admin console in Debian's Chromium, against `omnipresence demo --no-traffic`: every view
// renders, the board updates rows in place as changes flow, filter and group work, a failed write
// shows with its reason and Retry lands it, Resync reads an agent again, a rule in the explained
// decisions links to the policy, and the keyboard moves between views. With --shots DIR it saves
// a screenshot of each view there.
//
//   node admin.mjs --service URL --salesforce URL --genesys URL [--shots DIR]
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';

const args = Object.fromEntries(process.argv.slice(2).reduce((a, v, i, all) => (v.startsWith('--') ? [...a, [v.slice(2), all[i + 1]]] : a), []));
const { service, salesforce: sf, genesys: gc, shots } = args;
const ana = 'ana@example.com';

async function control(url, body) {
  const res = await fetch(url, { method: 'POST', body: JSON.stringify(body) });
  assert.ok(res.ok, `${url}: ${res.status} ${await res.text()}`);
}
const setGC = (presence) => control(`${gc}/_sim/presence`, { user: ana, presence });
const setSF = (status) => control(`${sf}/_sim/users/${ana}/status`, { status });
async function shot(page, name) {
  if (!shots) return;
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: `${shots}/${name}.png`, fullPage: false });
}
const cell = (system) => `tr[data-agent="${ana}"] td[data-system="${system}"] .chip`;
async function cellText(page, system) { return (await page.textContent(cell(system))).trim(); }

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const errors = [];
try {
  const page = await browser.newPage({ viewport: { width: 1366, height: 800 } });
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });

  // Board: one column per system, titled by vendor; every agent in sync once the demo settles.
  await page.goto(`${service}/#/board`);
  await page.waitForSelector('#live.on');
  await page.waitForFunction(() => document.querySelectorAll('#board-body tr[data-agent]').length === 50);
  const heads = await page.$$eval('#board-head th', (ths) => ths.map((t) => t.textContent));
  assert.ok(heads.some((h) => h.startsWith('Genesys Cloud')) && heads.some((h) => h.startsWith('Salesforce Omni-Channel')), `headers: ${heads}`);
  await page.waitForFunction(() => document.querySelector('[data-summary="all"] [data-state="in_sync"] .n').textContent === '50', null, { timeout: 30000 });
  await shot(page, 'board');

  // Live, in place: a Genesys change reaches Salesforce and the very same row shows both.
  await page.$eval(`tr[data-agent="${ana}"]`, (tr) => { tr.dataset.mark = 'kept'; });
  const before = await page.$(`tr[data-agent="${ana}"]`);
  await setGC('Break');
  await page.waitForFunction((sel) => document.querySelector(sel).textContent === 'Break', cell('sf'), { timeout: 15000 });
  assert.equal(await cellText(page, 'gc'), 'Break');
  assert.equal(await before.evaluate((n) => n.isConnected && n.dataset.mark), 'kept', 'the row was rebuilt instead of updated');
  assert.equal(await page.$eval(`tr[data-agent="${ana}"] td[data-system="gc"] .chip`, (n) => n.className), 'chip break');

  // A click during a stream of updates lands: change several agents while clicking Ana's link.
  for (const p of ['On Queue', 'Meal']) await control(`${gc}/_sim/presence`, { user: 'bo@example.com', presence: p });
  await page.click(`tr[data-agent="${ana}"] td.agent a`);
  await page.waitForSelector('#view-agent:not([hidden])');
  assert.equal(await page.textContent('#agent-title'), ana);

  // Agent: decisions newest first, in plain words, with the rule linked; the history chart.
  await page.waitForFunction(() => document.querySelectorAll('#agent-steps li[data-kind]').length > 3);
  const seqs = await page.$$eval('#agent-steps li[data-seq]', (lis) => lis.map((l) => Number(l.dataset.seq)).filter(Boolean));
  assert.ok(seqs.length > 3 && seqs.every((s, i) => i === 0 || s < seqs[i - 1]), `steps not newest first: ${seqs}`);
  const words = await page.textContent('#agent-steps');
  assert.ok(!/not_exists|baseline\b/.test(words), 'explain shows engine jargon');
  await page.waitForSelector('#agent-history svg rect.seg');
  await shot(page, 'agent');
  await page.click('#agent-steps .rule a[href*="map-gc-sf"]');
  await page.waitForSelector('#view-policy:not([hidden]) .target');
  assert.match(await page.getAttribute('.pol .target', 'id'), /rule-demo-map-gc-sf/);
  await shot(page, 'policy');

  // Filter and group.
  await page.goto(`${service}/#/board`);
  await page.fill('#filter', 'zainab');
  await page.waitForFunction(() => document.querySelectorAll('#board-body tr[data-agent]').length === 1);
  await page.fill('#filter', '');
  await page.selectOption('#group', 'team');
  await page.waitForSelector('#board-body tr.group');
  const groups = await page.$$eval('#board-body tr.group', (trs) => trs.map((t) => t.textContent));
  assert.deepEqual(groups.map((g) => g.split(' ')[0]), ['blended', 'chat', 'voice']);
  await shot(page, 'board-grouped');
  await page.selectOption('#group', '');

  // Health: both systems connected; every agent's console on the bridge.
  await page.click('nav a[data-nav="health"]');
  await page.waitForSelector('#health-cards article[data-system="sf"]');
  assert.match(await page.textContent('#health-cards article[data-system="sf"]'), /50 of 50 connected through the bridge/);
  assert.match(await page.getAttribute('#health-cards article[data-system="gc"]', 'class'), /connected/);
  await shot(page, 'health');

  // A failed write shows with its reason; Retry after the vendor recovers lands it.
  await control(`${gc}/_sim/faults`, { error_rate: 1, error_status: 400 });
  await setSF('Training');
  await page.click('nav a[data-nav="writes"]');
  // The row shows while the write is still in flight (drifting, "writing Training"); a 400 is
  // permanent, so it then turns failed, with the vendor's reason.
  const anaGC = `#writes-body tr[data-agent="${ana}"][data-system="gc"]`;
  await page.waitForFunction((sel) => /failed/.test(document.querySelector(sel)?.textContent ?? ''), anaGC, { timeout: 20000 });
  assert.match(await page.textContent(anaGC), /failed/);
  await shot(page, 'writes');
  await control(`${gc}/_sim/faults`, {});
  await page.click(`${anaGC} button[data-action="retry"]`);
  await page.waitForFunction((a) => !document.querySelector(`#writes-body tr[data-agent="${a}"]`), ana, { timeout: 20000 });
  assert.match(await page.textContent('#writes-status'), /again/);
  await page.goto(`${service}/#/board`);
  await page.waitForFunction((sel) => document.querySelector(sel).textContent === 'Training', cell('gc'), { timeout: 15000 });

  // Resync from the agent page.
  await page.goto(`${service}/#/agent/${encodeURIComponent(ana)}`);
  await page.click('#agent-resync');
  await page.waitForFunction(() => /Read ana@example.com's status from/.test(document.querySelector('#agent-meta').textContent));

  // Keyboard: / finds, g then s shows the systems, Escape leaves a field.
  await page.goto(`${service}/#/board`);
  await page.waitForSelector('#board-body tr[data-agent]');
  await page.keyboard.press('/');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'filter');
  await page.keyboard.press('Escape');
  await page.keyboard.press('g');
  await page.keyboard.press('s');
  await page.waitForSelector('#view-health:not([hidden])');

  const real = errors.filter((e) => !/favicon/.test(e));
  assert.deepEqual(real, [], 'errors in the page');
  console.log('admin console: every view, live in-place updates, filter, group, retry, resync and keys work');
} finally {
  await browser.close();
}
