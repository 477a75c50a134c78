// Runs Genesys's official JavaScript Platform API SDK, unmodified, against the Genesys Cloud
// simulator and asserts what it gets back. Only the SDK's documented gateway setting points it at
// the simulator.
//
// Usage: node check.mjs --url http://127.0.0.1:PORT --client-id ID --client-secret SECRET
// (or GENESYS_URL, GENESYS_CLIENT_ID, GENESYS_CLIENT_SECRET). Exits non-zero on the first failed
// check, printing what was expected and what came back.

import assert from 'node:assert/strict';
import { parseArgs } from 'node:util';
import platformClient from 'purecloud-platform-client-v2';
import WebSocket from 'ws';

const { values: args } = parseArgs({
	options: {
		url: { type: 'string', default: process.env.GENESYS_URL },
		'client-id': { type: 'string', default: process.env.GENESYS_CLIENT_ID },
		'client-secret': { type: 'string', default: process.env.GENESYS_CLIENT_SECRET },
	},
});
if (!args.url || !args['client-id'] || !args['client-secret']) {
	console.error('usage: node check.mjs --url URL --client-id ID --client-secret SECRET');
	process.exit(2);
}
const base = new URL(args.url);
const clientId = args['client-id'];
const clientSecret = args['client-secret'];

// The bound on every wait, so that a missing event fails the check instead of hanging it.
const waitMs = 10000;

/** pointAtSimulator sets c's gateway (the SDK's documented override of its base URLs) to the simulator. */
function pointAtSimulator(c) {
	c.setGateway({ host: base.hostname, protocol: base.protocol.replace(':', ''), port: Number(base.port) });
	return c;
}

/** newClient returns an ApiClient with a token of its own. */
const newClient = () => pointAtSimulator(new platformClient.ApiClientClass());

/** redacted keeps what an SDK rejection says about the response, not the request (its token). */
function redacted(err) {
	if (err === null || typeof err !== 'object') return err;
	const { error, ...rest } = err;
	return error ? { ...rest, error: String(error.message ?? error) } : rest;
}

const steps = [];
async function step(name, fn) {
	const t0 = performance.now();
	try {
		await fn();
	} catch (err) {
		console.error(`FAIL ${name}`);
		console.error(err instanceof Error ? err.stack : JSON.stringify(redacted(err), null, 2));
		process.exit(1);
	}
	const ms = performance.now() - t0;
	steps.push(name);
	console.log(`ok   ${name} (${ms.toFixed(0)} ms)`);
}

/** rejection awaits p, which must reject, and returns what it rejected with. */
async function rejection(p) {
	try {
		const v = await p;
		assert.fail(`expected a rejection, got ${JSON.stringify(v)}`);
	} catch (err) {
		if (err instanceof assert.AssertionError) throw err;
		return err;
	}
}

/** onlyKeys asserts every key of obj is one the SDK's typings declare for the model. */
function onlyKeys(obj, allowed, what) {
	for (const k of Object.keys(obj)) {
		assert.ok(allowed.includes(k), `${what}: field ${k} is not in the SDK model (${allowed.join(', ')})`);
	}
}

const client = pointAtSimulator(platformClient.ApiClient.instance);
const presenceApi = new platformClient.PresenceApi(client);
const usersApi = new platformClient.UsersApi(client);
const notificationsApi = new platformClient.NotificationsApi(client);

// Models as the SDK's index.d.ts declares them.
const model = {
	userPresence: ['id', 'name', 'source', 'sourceId', 'primary', 'presenceDefinition', 'futurePresenceDefinition', 'message', 'modifiedDate', 'selfUri'],
	presenceDefinitionRef: ['id', 'systemPresence', 'selfUri'],
	routingStatus: ['userId', 'status', 'startTime'],
	orgPresenceDefinition: ['id', 'name', 'type', 'languageLabels', 'systemPresence', 'divisionId', 'deactivated', 'selfUri'],
	orgPresence: ['id', 'name', 'languageLabels', 'systemPresence', 'deactivated', 'primary', 'createdBy', 'createdDate', 'modifiedBy', 'modifiedDate', 'selfUri'],
	presenceEvent: ['source', 'presenceDefinition', 'primary', 'message', 'modifiedDate', 'futurePresenceDefinition'],
	presenceEventDefinition: ['id', 'systemPresence'],
	channel: ['connectUri', 'id', 'expires'],
	channelTopic: ['id', 'state', 'rejectionReason', 'missingPermissions', 'selfUri'],
	usersSearchResponse: ['total', 'pageCount', 'pageSize', 'pageNumber', 'previousPage', 'currentPage', 'nextPage', 'types', 'results'],
};

await step('loginClientCredentialsGrant rejects a wrong secret', async () => {
	const bad = newClient();
	const err = await rejection(bad.loginClientCredentialsGrant(clientId, clientSecret + '-wrong'));
	assert.equal(err.response?.status, 401);
	assert.equal(err.response?.data?.error, 'invalid_client');
	assert.equal(bad.authData.accessToken, undefined);
});

await step('loginClientCredentialsGrant', async () => {
	const auth = await client.loginClientCredentialsGrant(clientId, clientSecret);
	assert.ok(typeof auth.accessToken === 'string' && auth.accessToken.length > 0, 'no access token');
	assert.ok(auth.tokenExpiryTime > Date.now() + 3600 * 1000, `token expires too soon: ${auth.tokenExpiryTimeString}`);
});

// Presence definitions by system presence, from both models.
let defs; // new model
let legacy; // legacy model, all pages
await step('PresenceApi.getPresenceDefinitions0 (new model)', async () => {
	defs = await presenceApi.getPresenceDefinitions0();
	assert.ok(Array.isArray(defs.entities) && defs.entities.length >= 9, 'too few definitions');
	assert.equal(defs.total, defs.entities.length);
	for (const d of defs.entities) {
		onlyKeys(d, model.orgPresenceDefinition, 'OrganizationPresenceDefinition');
		assert.ok(['System', 'User'].includes(d.type), `type ${d.type}`);
		assert.equal(typeof d.languageLabels, 'object');
		assert.equal(d.deactivated, false);
	}
	// The new model spells On Queue without the space.
	assert.ok(defs.entities.some((d) => d.systemPresence === 'OnQueue'), 'no OnQueue definition');
	assert.ok(!defs.entities.some((d) => d.systemPresence === 'On Queue'), 'new model uses the legacy spelling');
	const deactivated = await presenceApi.getPresenceDefinitions0({ deactivated: 'TRUE' });
	for (const d of deactivated.entities) assert.equal(d.deactivated, true);
});

await step('PresenceApi.getPresencedefinitions (legacy, paged)', async () => {
	const first = await presenceApi.getPresencedefinitions({ pageSize: 4, pageNumber: 1 });
	assert.equal(first.pageSize, 4);
	assert.equal(first.pageNumber, 1);
	assert.equal(first.pageCount, Math.ceil(first.total / 4));
	assert.ok(first.nextUri, 'first page has no nextUri');
	assert.equal(first.previousUri, undefined);
	legacy = [...first.entities];
	for (let n = 2; n <= first.pageCount; n++) {
		const p = await presenceApi.getPresencedefinitions({ pageSize: 4, pageNumber: n });
		assert.equal(p.pageNumber, n);
		assert.ok(p.previousUri, `page ${n} has no previousUri`);
		legacy.push(...p.entities);
	}
	assert.equal(legacy.length, first.total);
	for (const d of legacy) onlyKeys(d, model.orgPresence, 'OrganizationPresence');
	assert.deepEqual(new Set(legacy.map((d) => d.id)), new Set(defs.entities.map((d) => d.id)), 'the two models list different definitions');
	const onQueue = legacy.find((d) => d.systemPresence === 'On Queue' && d.primary);
	assert.ok(onQueue, 'no primary On Queue definition in the legacy model');
	const one = await presenceApi.getPresencedefinition(onQueue.id);
	assert.equal(one.id, onQueue.id);
	assert.equal(one.systemPresence, 'On Queue');
});

const primary = (sp) => {
	const d = legacy.find((x) => x.primary && x.systemPresence === sp);
	assert.ok(d, `no primary ${sp} definition`);
	return d;
};

await step('PresenceApi.getSystempresences', async () => {
	const sps = await presenceApi.getSystempresences();
	assert.ok(Array.isArray(sps), 'not an array');
	const names = sps.map((s) => s.name);
	for (const n of ['Available', 'Away', 'Busy', 'Offline', 'Idle', 'On Queue', 'Meal', 'Training', 'Meeting', 'Break']) {
		assert.ok(names.includes(n), `missing system presence ${n}`);
	}
	for (const s of sps) assert.ok(s.id && s.selfUri, `incomplete ${JSON.stringify(s)}`);
});

let users;
let ana;
await step('UsersApi.getUsers expand presence,routingStatus', async () => {
	const page = await usersApi.getUsers({ pageSize: 5, expand: ['presence', 'routingStatus'] });
	assert.equal(page.pageSize, 5);
	assert.ok(page.total >= 10, `total ${page.total}`);
	assert.equal(page.entities.length, 5);
	users = page.entities;
	for (const u of users) {
		assert.ok(u.id && u.email && u.name, 'user without id, email or name');
		assert.equal(typeof u.version, 'number');
		onlyKeys(u.presence, model.userPresence, 'UserPresence');
		onlyKeys(u.presence.presenceDefinition, model.presenceDefinitionRef, 'PresenceDefinition');
		onlyKeys(u.routingStatus, model.routingStatus, 'RoutingStatus');
		assert.equal(u.routingStatus.userId, u.id);
		assert.ok(legacy.some((d) => d.id === u.presence.presenceDefinition.id), 'presence of an unknown definition');
	}
	ana = users[0];
	const byIds = await usersApi.getUsers({ id: [users[1].id, users[2].id] });
	assert.deepEqual(byIds.entities.map((u) => u.id).sort(), [users[1].id, users[2].id].sort());
	assert.equal(byIds.entities[0].presence, undefined, 'presence sent without expand');
});

await step('UsersApi.postUsersSearch EXACT email', async () => {
	const res = await usersApi.postUsersSearch({
		query: [{ type: 'EXACT', fields: ['email'], value: ana.email }],
		sortBy: 'email', sortOrder: 'ASC', expand: ['presence', 'routingStatus'], pageSize: 25,
	});
	onlyKeys(res, model.usersSearchResponse, 'UsersSearchResponse');
	assert.equal(res.total, 1);
	assert.deepEqual(res.types, ['users']);
	assert.equal(res.results[0].id, ana.id);
	assert.ok(res.results[0].presence && res.results[0].routingStatus, 'search ignored expand');
	// EXACT is exact: a prefix of the address matches nobody.
	const none = await usersApi.postUsersSearch({ query: [{ type: 'EXACT', fields: ['email'], value: ana.email.slice(0, -1) }] });
	assert.equal(none.total, 0);
	assert.deepEqual(none.results ?? [], []);
});

await step('UsersApi.postUsersSearch pages through UsersApi.getUsersSearch(q64)', async () => {
	const ids = new Set();
	let page = await usersApi.postUsersSearch({ query: [{ type: 'CONTAINS', fields: ['email'], value: '@' }], pageSize: 20 });
	assert.ok(page.total > 20, `total ${page.total}`);
	assert.ok(page.currentPage, 'no currentPage');
	for (let n = 1; ; n++) {
		assert.equal(page.pageNumber, n);
		for (const u of page.results) ids.add(u.id);
		if (!page.nextPage) break;
		// nextPage is the q64 link of the next page; the SDK takes the q64 value.
		const q64 = new URL(page.nextPage, base).searchParams.get('q64') ?? page.nextPage;
		page = await usersApi.getUsersSearch(q64, { expand: ['presence'] });
		assert.ok(page.results.every((u) => u.presence), 'expand ignored on the q64 page');
	}
	assert.equal(page.pageNumber, page.pageCount);
	assert.equal(ids.size, page.total);
});

// The notification channel is opened before presence changes so its socket sees them.
let channel;
let socket;
const received = [];
const waiters = [];
function nextEvent(pred, what) {
	const hit = received.find(pred);
	if (hit) return Promise.resolve(hit);
	return new Promise((resolve, reject) => {
		const w = { pred, resolve };
		waiters.push(w);
		setTimeout(() => reject(new Error(`no ${what} within ${waitMs} ms; received ${JSON.stringify(received)}`)), waitMs).unref();
	});
}

await step('NotificationsApi.postNotificationsChannels + putNotificationsChannelSubscriptions', async () => {
	channel = await notificationsApi.postNotificationsChannels();
	onlyKeys(channel, model.channel, 'Channel');
	assert.ok(channel.id && channel.connectUri && channel.expires, 'incomplete channel');
	assert.ok(Date.parse(channel.expires) > Date.now(), 'channel already expired');
	const topic = `v2.users.${ana.id}.presence`;
	const subs = await notificationsApi.putNotificationsChannelSubscriptions(channel.id, [{ id: topic }]);
	assert.deepEqual(subs.entities.map((e) => e.id), [topic]);
	for (const e of subs.entities) onlyKeys(e, model.channelTopic, 'ChannelTopic');
	const listed = await notificationsApi.getNotificationsChannelSubscriptions(channel.id);
	assert.deepEqual(listed.entities.map((e) => e.id), [topic]);
	// HEAD answers 200 for a live channel (the SDK rejects anything else).
	await notificationsApi.headNotificationsChannel(channel.id);
	const channels = await notificationsApi.getNotificationsChannels();
	assert.ok(channels.entities.some((c) => c.id === channel.id), 'channel not listed');
});

await step('WebSocket connects to connectUri and answers a ping', async () => {
	socket = new WebSocket(channel.connectUri);
	socket.on('message', (data) => {
		const msg = JSON.parse(data.toString());
		received.push(msg);
		for (const w of waiters.splice(0)) {
			if (w.pred(msg)) w.resolve(msg);
			else waiters.push(w);
		}
	});
	await new Promise((resolve, reject) => {
		socket.once('open', resolve);
		socket.once('error', reject);
	});
	socket.send(JSON.stringify({ message: 'ping' }));
	await nextEvent((m) => m.topicName === 'channel.metadata' && m.eventBody?.message === 'pong', 'pong');
});

let busy;
await step('PresenceApi.patchUserPresence (PURECLOUD) + getUserPresence read back', async () => {
	busy = primary('Busy');
	const patched = await presenceApi.patchUserPresence(ana.id, 'PURECLOUD', { presenceDefinition: { id: busy.id }, message: 'in a meeting' });
	onlyKeys(patched, model.userPresence, 'UserPresence');
	assert.equal(patched.presenceDefinition.id, busy.id);
	assert.equal(patched.presenceDefinition.systemPresence, 'Busy');
	assert.equal(patched.message, 'in a meeting');
	const read = await presenceApi.getUserPresence(ana.id, 'PURECLOUD');
	assert.equal(read.presenceDefinition.id, busy.id);
	assert.equal(read.source, 'PURECLOUD');
	const viaPurecloud = await presenceApi.getUserPresencesPurecloud(ana.id);
	assert.equal(viaPurecloud.presenceDefinition.id, busy.id);
	const withUser = await usersApi.getUser(ana.id, { expand: ['presence'] });
	assert.equal(withUser.presence.presenceDefinition.id, busy.id);
});

await step('presence event over the WebSocket has the PresenceEventUserPresence shape', async () => {
	const topic = `v2.users.${ana.id}.presence`;
	const ev = await nextEvent((m) => m.topicName === topic && m.eventBody?.presenceDefinition?.id === busy.id, 'presence event');
	assert.equal(ev.version, '2');
	assert.ok(ev.metadata?.CorrelationId, 'no metadata.CorrelationId');
	onlyKeys(ev.eventBody, model.presenceEvent, 'PresenceEventUserPresence');
	onlyKeys(ev.eventBody.presenceDefinition, model.presenceEventDefinition, 'PresenceEventOrganizationPresence');
	// Events spell system presences in upper case with underscores.
	assert.equal(ev.eventBody.presenceDefinition.systemPresence, 'BUSY');
	assert.equal(ev.eventBody.source, 'PURECLOUD');
	assert.equal(ev.eventBody.message, 'in a meeting');
	assert.ok(!Number.isNaN(Date.parse(ev.eventBody.modifiedDate)), 'modifiedDate is not a date');
});

await step('NotificationsApi.postNotificationsChannelSubscriptions adds a combined topic', async () => {
	const subs = await notificationsApi.postNotificationsChannelSubscriptions(channel.id, [{ id: `v2.users.${ana.id}?routingStatus&activity` }]);
	assert.deepEqual(subs.entities.map((e) => e.id).sort(), ['activity', 'presence', 'routingStatus'].map((t) => `v2.users.${ana.id}.${t}`));
});

await step('PresenceApi.patchUserPresencesPurecloud to On Queue: presence, routingStatus and activity events', async () => {
	const onQueue = primary('On Queue');
	const patched = await presenceApi.patchUserPresencesPurecloud(ana.id, { presenceDefinition: { id: onQueue.id }, primary: true });
	assert.equal(patched.presenceDefinition.systemPresence, 'On Queue');
	const ev = await nextEvent((m) => m.topicName === `v2.users.${ana.id}.presence` && m.eventBody?.presenceDefinition?.id === onQueue.id, 'On Queue event');
	assert.equal(ev.eventBody.presenceDefinition.systemPresence, 'ON_QUEUE');
	// UserRoutingStatusUserRoutingStatus
	const rs = await nextEvent((m) => m.topicName === `v2.users.${ana.id}.routingStatus` && m.eventBody?.routingStatus?.status === 'IDLE', 'routingStatus event');
	onlyKeys(rs.eventBody, ['id', 'routingStatus', 'errorInfo'], 'UserRoutingStatusUserRoutingStatus');
	onlyKeys(rs.eventBody.routingStatus, ['status', 'startTime'], 'UserRoutingStatusRoutingStatus');
	assert.equal(rs.eventBody.id, ana.id);
	// AgentActivityChangedTopicAgentActivity
	const act = await nextEvent((m) => m.topicName === `v2.users.${ana.id}.activity` && m.eventBody?.routingStatus?.status === 'IDLE', 'activity event');
	onlyKeys(act.eventBody, ['id', 'routingStatus', 'presence', 'outOfOffice', 'activeQueueIds', 'dateActiveQueuesChanged'], 'AgentActivityChangedTopicAgentActivity');
	onlyKeys(act.eventBody.presence, ['presenceDefinition', 'presenceMessage', 'modifiedDate'], 'AgentActivityChangedTopicPresence');
	onlyKeys(act.eventBody.outOfOffice, ['active', 'modifiedDate'], 'AgentActivityChangedTopicOutOfOffice');
	assert.equal(act.eventBody.presence.presenceDefinition.systemPresence, 'ON_QUEUE');
	assert.ok(Array.isArray(act.eventBody.activeQueueIds), 'activeQueueIds is not an array');
});

await step('UsersApi.getUserRoutingstatus / putUserRoutingstatus semantics', async () => {
	// On Queue without work is IDLE.
	const rs = await usersApi.getUserRoutingstatus(ana.id);
	onlyKeys(rs, model.routingStatus, 'RoutingStatus');
	assert.equal(rs.userId, ana.id);
	assert.equal(rs.status, 'IDLE');
	// Routing statuses the system sets cannot be put.
	const err = await rejection(usersApi.putUserRoutingstatus(ana.id, { status: 'INTERACTING' }));
	assert.equal(err.status, 400);
	assert.ok(err.code && err.message, 'error body without code or message');
	// OFF_QUEUE takes the user off queue, back to the presence before On Queue.
	const off = await usersApi.putUserRoutingstatus(ana.id, { status: 'OFF_QUEUE' });
	assert.equal(off.status, 'OFF_QUEUE');
	const p = await presenceApi.getUserPresence(ana.id, 'PURECLOUD');
	assert.equal(p.presenceDefinition.id, busy.id);
	// IDLE cannot put a user who is not On Queue on queue.
	const idle = await rejection(usersApi.putUserRoutingstatus(ana.id, { status: 'IDLE' }));
	assert.equal(idle.status, 400);
	// Unknown users read as OFF_QUEUE.
	const ghost = await usersApi.getUserRoutingstatus('00000000-0000-4000-8000-000000000000');
	assert.equal(ghost.status, 'OFF_QUEUE');
});

await step('PresenceApi bulk: putUsersPresencesBulk + getUsersPresencesPurecloudBulk', async () => {
	const available = primary('Available');
	const ids = [users[1].id, users[2].id];
	const put = await presenceApi.putUsersPresencesBulk(ids.map((id) => ({ id, presenceDefinition: { id: available.id } })));
	assert.equal(put.length, 2);
	for (const p of put) assert.equal(p.presenceDefinition.id, available.id);
	const got = await presenceApi.getUsersPresencesPurecloudBulk({ id: ids });
	assert.deepEqual(got.map((p) => p.userId).sort(), [...ids].sort());
	for (const p of got) assert.equal(p.presenceDefinition.id, available.id);
	// The same through the source-generic bulk endpoint.
	const generic = await presenceApi.getUsersPresenceBulk('PURECLOUD', { id: ids });
	assert.deepEqual(generic.map((p) => p.userId).sort(), [...ids].sort());
	const bad = await rejection(presenceApi.putUsersPresencesBulk([{ id: ids[0], presenceDefinition: { id: 'no-such-definition' } }]));
	assert.equal(bad.status, 400);
});

await step('errors: unknown user 404 in the Genesys error envelope', async () => {
	const err = await rejection(presenceApi.getUserPresence('00000000-0000-4000-8000-000000000000', 'PURECLOUD'));
	assert.equal(err.status, 404);
	assert.ok(err.code && err.message && err.contextId, `not the error envelope: ${JSON.stringify(err)}`);
});

await step('rate limit: 429 with Retry-After and inin-ratelimit headers', async () => {
	// A token of its own so the rest of the check keeps its budget.
	const c = newClient();
	await c.loginClientCredentialsGrant(clientId, clientSecret);
	c.setReturnExtendedResponses(true);
	const api = new platformClient.PresenceApi(c);
	const first = await api.getSystempresences();
	const allowed = Number(first.headers['inin-ratelimit-allowed']);
	assert.ok(allowed > 0, `inin-ratelimit-allowed ${first.headers['inin-ratelimit-allowed']}`);
	assert.equal(first.headers['inin-ratelimit-count'], '1');
	for (let i = 1; i < allowed; i++) await api.getSystempresences();
	const err = await rejection(api.getSystempresences());
	assert.equal(err.status, 429);
	assert.equal(err.body.code, 'too.many.requests.retry.after');
	const retryAfter = Number(err.headers['retry-after']);
	assert.ok(retryAfter >= 1, `Retry-After ${err.headers['retry-after']}`);
	assert.match(err.body.message, /Retry the request in \[\d+\] seconds/);
	// The other token is not limited.
	await presenceApi.getSystempresences();
});

await step('429 storm: the SDK surfaces the status, Retry-After and the Genesys error body', async () => {
	const c = newClient();
	await c.loginClientCredentialsGrant(clientId, clientSecret);
	c.setReturnExtendedResponses(true);
	const api = new platformClient.UsersApi(c);
	// The storm is switched on through the simulator's control endpoint, not the SDK. It is short:
	// a storm cannot be called off, only outlived.
	const res = await fetch(new URL('/_sim/faults', base), { method: 'POST', body: JSON.stringify({ storm_for: '300ms', retry_after: '3s' }) });
	assert.equal(res.status, 200);
	const err = await rejection(api.getUserRoutingstatus(ana.id));
	assert.equal(err.status, 429);
	assert.equal(err.headers['retry-after'], '3');
	assert.equal(err.body.status, 429);
	assert.equal(err.body.code, 'too.many.requests.retry.after');
	assert.match(err.body.message, /Retry the request in \[3\] seconds/);
	// After the storm the same client is served again.
	const deadline = Date.now() + waitMs;
	for (;;) {
		try {
			const ok = await api.getUserRoutingstatus(ana.id);
			assert.equal(ok.status, 200);
			break;
		} catch (e) {
			if (e instanceof assert.AssertionError || e.status !== 429 || Date.now() > deadline) throw e;
			await new Promise((r) => setTimeout(r, 50));
		}
	}
});

socket.close();
console.log(`PASS ${steps.length} checks against ${base.origin} with purecloud-platform-client-v2`);
