// Runs AWS's JavaScript v3 SDK clients for Amazon Connect and Kinesis, unmodified, against the
// Amazon Connect simulator and asserts what they get back. Only the clients' documented
// `endpoint` setting points them at the simulator; the Kinesis client speaks cleartext HTTP/2 to
// it, as it does to any http:// endpoint.
//
// Usage: node check.mjs, with SIM_URL, SIM_KINESIS_URL, SIM_REGION, SIM_INSTANCE_ID, SIM_AGENT_EVENT_STREAM,
// SIM_ACCESS_KEY_ID and SIM_SECRET_ACCESS_KEY set from the simulator's start line. Exits non-zero
// on the first failed check, printing what was expected and what came back.

import assert from 'node:assert/strict';
import {
	ConnectClient, DescribeUserCommand, GetCurrentUserDataCommand, PutUserStatusCommand,
	SearchUsersCommand, paginateListAgentStatuses, paginateListUsers,
} from '@aws-sdk/client-connect';
import {
	DescribeStreamSummaryCommand, GetRecordsCommand, GetShardIteratorCommand, KinesisClient, ListShardsCommand,
} from '@aws-sdk/client-kinesis';

const env = (k) => {
	const v = process.env[k];
	if (!v) {
		console.error(`missing ${k}`);
		process.exit(2);
	}
	return v;
};
const region = env('SIM_REGION');
const instanceId = env('SIM_INSTANCE_ID');
const stream = env('SIM_AGENT_EVENT_STREAM');
const credentials = { accessKeyId: env('SIM_ACCESS_KEY_ID'), secretAccessKey: env('SIM_SECRET_ACCESS_KEY') };
const connect = new ConnectClient({ region, endpoint: env('SIM_URL'), credentials });
const kinesis = new KinesisClient({ region, endpoint: env('SIM_KINESIS_URL'), credentials });

// Statuses, every page of two.
const statuses = [];
for await (const page of paginateListAgentStatuses({ client: connect, pageSize: 2 }, { InstanceId: instanceId })) {
	statuses.push(...page.AgentStatusSummaryList);
}
const byName = Object.fromEntries(statuses.map((s) => [s.Name, s]));
assert.ok(byName.Available && byName.Lunch && byName.Offline, `statuses: ${statuses.map((s) => s.Name)}`);
assert.equal(byName.Available.Type, 'ROUTABLE');
assert.equal(byName.Offline.Type, 'OFFLINE');
assert.equal(byName.Lunch.Type, 'CUSTOM');
assert.ok(byName.Lunch.LastModifiedTime instanceof Date, 'LastModifiedTime is a Date');
console.log(`ListAgentStatuses: ${statuses.length} statuses`);

// Users: every page, then one found by username and described.
let users = 0;
for await (const page of paginateListUsers({ client: connect, pageSize: 20 }, { InstanceId: instanceId })) {
	users += page.UserSummaryList.length;
}
assert.ok(users >= 3, `ListUsers: ${users} users`);
const found = await connect.send(new SearchUsersCommand({
	InstanceId: instanceId,
	SearchCriteria: { StringCondition: { FieldName: 'Username', Value: 'ana@example.com', ComparisonType: 'EXACT' } },
}));
assert.equal(found.Users.length, 1, 'SearchUsers finds ana');
const ana = found.Users[0];
const described = await connect.send(new DescribeUserCommand({ InstanceId: instanceId, UserId: ana.Id }));
assert.equal(described.User.IdentityInfo.Email, 'ana@example.com');
console.log(`ListUsers: ${users} users; SearchUsers and DescribeUser: ${ana.Id}`);

// Put a status and read it back.
await connect.send(new PutUserStatusCommand({ InstanceId: instanceId, UserId: ana.Id, AgentStatusId: byName.Lunch.Id }));
const data = await connect.send(new GetCurrentUserDataCommand({ InstanceId: instanceId, Filters: { Agents: [ana.Id] } }));
assert.equal(data.UserDataList.length, 1);
const status = data.UserDataList[0].Status;
assert.equal(status.StatusName, 'Lunch');
assert.equal(status.StatusArn, byName.Lunch.Arn);
assert.ok(status.StatusStartTimestamp instanceof Date, 'StatusStartTimestamp is a Date');
console.log(`PutUserStatus and GetCurrentUserData: ${status.StatusName} since ${status.StatusStartTimestamp.toISOString()}`);

// The agent event of that change, from the Kinesis stream.
const summary = await kinesis.send(new DescribeStreamSummaryCommand({ StreamName: stream }));
assert.equal(summary.StreamDescriptionSummary.StreamStatus, 'ACTIVE');
const { Shards } = await kinesis.send(new ListShardsCommand({ StreamName: stream }));
assert.ok(Shards.length >= 1);
let event;
for (const shard of Shards) {
	const it = await kinesis.send(new GetShardIteratorCommand({ StreamName: stream, ShardId: shard.ShardId, ShardIteratorType: 'TRIM_HORIZON' }));
	const got = await kinesis.send(new GetRecordsCommand({ ShardIterator: it.ShardIterator }));
	assert.ok(got.NextShardIterator, 'an open shard has a next iterator');
	for (const rec of got.Records) {
		const ev = JSON.parse(new TextDecoder().decode(rec.Data));
		assert.equal(rec.PartitionKey, ev.AgentARN, 'the partition key is the agent ARN');
		if (ev.AgentARN === ana.Arn && ev.EventType === 'STATE_CHANGE' && ev.CurrentAgentSnapshot.AgentStatus.Name === 'Lunch') {
			event = ev;
		}
	}
}
assert.ok(event, 'the STATE_CHANGE to Lunch is on the stream');
assert.equal(event.Version, '2017-10-01');
assert.equal(event.CurrentAgentSnapshot.AgentStatus.ARN, byName.Lunch.Arn);
assert.equal(new Date(event.CurrentAgentSnapshot.AgentStatus.StartTimestamp).getTime(), status.StatusStartTimestamp.getTime(),
	'the event and GetCurrentUserData date the change alike');
console.log(`Kinesis: ${Shards.length} shards; ${event.EventType} ${event.CurrentAgentSnapshot.AgentStatus.Name} at ${event.CurrentAgentSnapshot.AgentStatus.StartTimestamp}`);

// A throttle: more PutUserStatus calls than the quota allows, without the SDK's retries.
const once = new ConnectClient({ region, endpoint: env('SIM_URL'), credentials, maxAttempts: 1 });
const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => once.send(new PutUserStatusCommand({
	InstanceId: instanceId, UserId: ana.Id, AgentStatusId: (i % 2 ? byName.Lunch : byName.Available).Id,
}))));
const throttled = results.filter((r) => r.status === 'rejected');
assert.ok(throttled.length > 0, 'some calls are throttled');
for (const r of throttled) {
	assert.equal(r.reason.name, 'ThrottlingException');
	assert.equal(r.reason.$metadata.httpStatusCode, 429);
}
console.log(`throttled: ${throttled.length} of ${results.length} PutUserStatus calls (ThrottlingException, 429)`);

// A key the instance does not know is refused as AWS refuses it.
const stranger = new ConnectClient({ region, endpoint: env('SIM_URL'), credentials: { accessKeyId: 'AKIAUNKNOWNKEY000000', secretAccessKey: 'x' }, maxAttempts: 1 });
await assert.rejects(stranger.send(new GetCurrentUserDataCommand({ InstanceId: instanceId, Filters: { Agents: [ana.Id] } })),
	(err) => err.name === 'UnrecognizedClientException' && err.$metadata.httpStatusCode === 403);
console.log('unknown access key: UnrecognizedClientException');
// So is a wrong secret: the signature does not match.
const forger = new KinesisClient({ region, endpoint: env('SIM_KINESIS_URL'), credentials: { ...credentials, secretAccessKey: 'wrong' }, maxAttempts: 1 });
await assert.rejects(forger.send(new ListShardsCommand({ StreamName: stream })),
	(err) => err.name === 'InvalidSignatureException' && err.$metadata.httpStatusCode === 403);
console.log('wrong secret: InvalidSignatureException');
forger.destroy();
connect.destroy();
kinesis.destroy();
once.destroy();
stranger.destroy();
