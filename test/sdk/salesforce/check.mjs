// Runs jsforce, unmodified, against the Salesforce simulator and fails on the first answer a
// real org would not give. Input (environment): SF_LOGIN_URL, SF_CLIENT_ID, SF_CLIENT_SECRET,
// and SF_BATCH_SIZE, the simulator's query page size. The simulator must have at least one
// agent logged in to Omni-Channel and one accepted work item. Exit status 0 means every check passed.
import assert from 'node:assert/strict';
import jsforce from 'jsforce';

const loginUrl = process.env.SF_LOGIN_URL;
const batchSize = Number(process.env.SF_BATCH_SIZE || '2000');
assert.ok(loginUrl, 'SF_LOGIN_URL is required');

const checks = [];
async function check(name, fn) {
  try {
    await fn();
    checks.push(name);
    console.log(`ok   ${name}`);
  } catch (err) {
    console.error(`FAIL ${name}: ${err && err.stack ? err.stack : err}`);
    process.exitCode = 1;
  }
}

const oauth2 = new jsforce.OAuth2({
  loginUrl,
  clientId: process.env.SF_CLIENT_ID,
  clientSecret: process.env.SF_CLIENT_SECRET,
});
const conn = new jsforce.Connection({ oauth2, version: '62.0' });

await check('OAuth 2.0 client credentials through jsforce', async () => {
  const info = await conn.authorize({ grant_type: 'client_credentials' });
  assert.match(info.id, /^005[0-9A-Za-z]{15}$/, 'user id from the identity URL');
  assert.match(info.organizationId, /^00D[0-9A-Za-z]{15}$/, 'org id from the identity URL');
  assert.ok(conn.accessToken, 'access token');
  assert.ok(conn.instanceUrl.startsWith('http'), 'instance URL');
});
if (process.exitCode) process.exit();

await check('identity', async () => {
  const id = await conn.identity();
  assert.equal(typeof id.username, 'string');
  assert.match(id.user_id, /^005/);
});

await check('query ServicePresenceStatus', async () => {
  const res = await conn.query('SELECT Id, DeveloperName, MasterLabel FROM ServicePresenceStatus', { autoFetch: true });
  assert.equal(res.done, true);
  assert.ok(res.totalSize > 0 && res.records.length === res.totalSize);
  for (const r of res.records) {
    assert.equal(r.attributes.type, 'ServicePresenceStatus');
    assert.match(r.Id, /^0N5[0-9A-Za-z]{15}$/);
    assert.equal(typeof r.DeveloperName, 'string');
    assert.equal(typeof r.MasterLabel, 'string');
  }
});

await check('parent relationship fields on current UserServicePresence', async () => {
  const res = await conn.query(
    'SELECT Id, UserId, User.Email, ServicePresenceStatus.DeveloperName, StatusStartDate ' +
      'FROM UserServicePresence WHERE IsCurrentState = true');
  assert.ok(res.totalSize > 0, 'at least one agent is logged in');
  for (const r of res.records) {
    assert.equal(r.attributes.type, 'UserServicePresence');
    assert.equal(r.User.attributes.type, 'User');
    assert.match(r.User.Email, /@/);
    assert.equal(r.ServicePresenceStatus.attributes.type, 'ServicePresenceStatus');
    assert.equal(typeof r.ServicePresenceStatus.DeveloperName, 'string');
    assert.ok(!Number.isNaN(Date.parse(r.StatusStartDate)), `StatusStartDate ${r.StatusStartDate} parses`);
  }
});

await check('accepted AgentWork with its channel', async () => {
  const res = await conn.query(
    "SELECT Id, WorkItemId, User.Email, ServiceChannel.DeveloperName, AcceptDateTime, CapacityPercentage " +
      "FROM AgentWork WHERE Status = 'Opened' ORDER BY AcceptDateTime");
  assert.ok(res.totalSize > 0, 'at least one agent has accepted work');
  for (const r of res.records) {
    assert.match(r.Id, /^0Bz[0-9A-Za-z]{15}$/);
    assert.match(r.User.Email, /@/);
    assert.equal(typeof r.ServiceChannel.DeveloperName, 'string');
    assert.ok(!Number.isNaN(Date.parse(r.AcceptDateTime)), `AcceptDateTime ${r.AcceptDateTime} parses`);
  }
  const d = await conn.sobject('AgentWork').describe();
  assert.equal(d.keyPrefix, '0Bz');
  assert.equal(d.fields.find((f) => f.name === 'ServiceChannelId').relationshipName, 'ServiceChannel');
});

await check('queryMore over pages', async () => {
  const first = await conn.query('SELECT Id FROM User ORDER BY Id', { autoFetch: false });
  assert.ok(first.totalSize > batchSize, `more users (${first.totalSize}) than a page (${batchSize})`);
  assert.equal(first.done, false);
  assert.equal(first.records.length, batchSize);
  assert.ok(first.nextRecordsUrl, 'nextRecordsUrl');
  const seen = first.records.map((r) => r.Id);
  let page = first;
  while (!page.done) {
    page = await conn.queryMore(page.nextRecordsUrl);
    assert.equal(page.totalSize, first.totalSize, 'totalSize is the same on every page');
    seen.push(...page.records.map((r) => r.Id));
  }
  assert.equal(seen.length, first.totalSize);
  assert.equal(new Set(seen).size, seen.length, 'no record twice');
  assert.deepEqual(seen, [...seen].sort(), 'ORDER BY Id holds across pages');
});

await check('autoFetch collects every page', async () => {
  const records = [];
  await new Promise((resolve, reject) => {
    conn.query('SELECT Id, Email FROM User')
      .on('record', (r) => records.push(r))
      .on('end', resolve)
      .on('error', reject)
      .run({ autoFetch: true, maxFetch: 100000 });
  });
  const count = await conn.query('SELECT COUNT() FROM User');
  assert.equal(records.length, count.totalSize);
});

await check('describe', async () => {
  const d = await conn.sobject('UserServicePresence').describe();
  assert.equal(d.name, 'UserServicePresence');
  assert.equal(d.keyPrefix, '0Hn');
  assert.equal(d.createable, false);
  const status = d.fields.find((f) => f.name === 'ServicePresenceStatusId');
  assert.ok(status, 'ServicePresenceStatusId field');
  assert.equal(status.type, 'reference');
  assert.deepEqual(status.referenceTo, ['ServicePresenceStatus']);
  assert.equal(status.relationshipName, 'ServicePresenceStatus');
  const g = await conn.describeGlobal();
  assert.ok(g.sobjects.some((o) => o.name === 'AgentWork'), 'AgentWork in describeGlobal');
});

await check('retrieve', async () => {
  const res = await conn.query("SELECT Id, Email FROM User WHERE Email != null LIMIT 1");
  const want = res.records[0];
  const got = await conn.sobject('User').retrieve(want.Id);
  assert.equal(got.Id, want.Id);
  assert.equal(got.Email, want.Email);
  assert.equal(got.attributes.type, 'User');
  const some = await conn.sobject('User').retrieve(want.Id.slice(0, 15), { fields: ['Email'] });
  assert.equal(some.Email, want.Email);
});

await check('limits', async () => {
  const l = await conn.limits();
  assert.ok(l.DailyApiRequests.Max > 0);
  assert.ok(l.DailyApiRequests.Remaining < l.DailyApiRequests.Max, 'our calls were counted');
});

await check('creating a UserServicePresence is refused', async () => {
  const statuses = await conn.query('SELECT Id FROM ServicePresenceStatus LIMIT 1');
  await assert.rejects(
    conn.sobject('UserServicePresence').create({ UserId: conn.userInfo.id, ServicePresenceStatusId: statuses.records[0].Id }),
    (err) => {
      assert.equal(err.errorCode, 'INVALID_TYPE_FOR_OPERATION');
      assert.match(err.message, /entity type cannot be inserted/);
      return true;
    });
});

await check('a bad query gets Salesforce\'s error', async () => {
  await assert.rejects(conn.query('SELECT Nope FROM User'), (err) => {
    assert.equal(err.errorCode, 'INVALID_FIELD');
    return true;
  });
});

if (!process.exitCode) console.log(`all ${checks.length} checks passed`);
