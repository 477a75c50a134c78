package amazonconnect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"golang.org/x/time/rate"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/pause"
	"github.com/omnipresence/omnipresence/internal/presence"
)

// shardEnd is the checkpoint of a shard read to its end (closed by resharding).
const shardEnd = "end"

// Watch follows the instance's agent event stream: every shard, each from the sequence number
// after the last record whose events were stored (a shard never read starts at the newest
// record, a child of a shard read to its end at its oldest), children only once their parents
// are read to the end. A record's sequence number is checkpointed after its events are emitted;
// a failed emit ends Watch with the error, and the next Watch reads that record again.
func (c *Connector) Watch(ctx context.Context, emit connector.Emit) error {
	if c.o.Stream == "" {
		c.log.Warn("no agent_event_stream: Connect changes are not watched, only read back")
		<-ctx.Done()
		return nil
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	ended := make(chan string, 16)
	running := map[string]bool{}
	refresh := time.NewTicker(c.o.ShardRefresh)
	defer refresh.Stop()
	for {
		shards, err := c.listShards(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		starts, err := c.startable(ctx, shards, running)
		if err != nil {
			return err
		}
		for _, s := range starts {
			running[s.id] = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := c.readShard(ctx, emit, s)
				if err != nil {
					select {
					case errc <- err:
					default:
					}
					return
				}
				select {
				case ended <- s.id:
				case <-ctx.Done():
				}
			}()
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		case id := <-ended:
			delete(running, id)
		case <-refresh.C:
		}
	}
}

func (c *Connector) checkpointName(shard string) string {
	return "amazonconnect/" + c.o.Stream + "/" + shard
}

func (c *Connector) listShards(ctx context.Context) ([]ktypes.Shard, error) {
	var out []ktypes.Shard
	in := &kinesis.ListShardsInput{StreamName: &c.o.Stream}
	for {
		page, err := c.kinesis.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("kinesis ListShards %s: %w", c.o.Stream, classify(err, c.o.WireSecond))
		}
		out = append(out, page.Shards...)
		if page.NextToken == nil {
			return out, nil
		}
		in = &kinesis.ListShardsInput{NextToken: page.NextToken}
	}
}

// shardStart is where to start reading one shard.
type shardStart struct {
	id, typ, seq string
}

// startable picks the shards to start reading now.
func (c *Connector) startable(ctx context.Context, shards []ktypes.Shard, running map[string]bool) ([]shardStart, error) {
	cps := map[string]string{}
	for _, sh := range shards {
		cp, err := c.o.Checkpoints.Checkpoint(ctx, c.checkpointName(aws.ToString(sh.ShardId)))
		if err != nil {
			return nil, fmt.Errorf("checkpoint: %w", err)
		}
		cps[aws.ToString(sh.ShardId)] = cp
	}
	var out []shardStart
	for _, sh := range shards {
		id := aws.ToString(sh.ShardId)
		cp := cps[id]
		if running[id] || cp == shardEnd {
			continue
		}
		wait, parentEnded := false, false
		for _, p := range []*string{sh.ParentShardId, sh.AdjacentParentShardId} {
			pid := aws.ToString(p)
			pcp, listed := cps[pid]
			if pid == "" || !listed {
				continue
			}
			wait = wait || running[pid] || (pcp != "" && pcp != shardEnd)
			parentEnded = parentEnded || pcp == shardEnd
		}
		closed := sh.SequenceNumberRange != nil && sh.SequenceNumberRange.EndingSequenceNumber != nil
		switch {
		case wait:
		case cp != "":
			out = append(out, shardStart{id: id, typ: string(ktypes.ShardIteratorTypeAfterSequenceNumber), seq: cp})
		case parentEnded:
			out = append(out, shardStart{id: id, typ: string(ktypes.ShardIteratorTypeTrimHorizon)})
		case !closed:
			out = append(out, shardStart{id: id, typ: string(ktypes.ShardIteratorTypeLatest)})
		}
	}
	return out, nil
}

func (c *Connector) iterator(ctx context.Context, s shardStart) (*string, error) {
	in := &kinesis.GetShardIteratorInput{StreamName: &c.o.Stream, ShardId: &s.id, ShardIteratorType: ktypes.ShardIteratorType(s.typ)}
	if s.seq != "" {
		in.StartingSequenceNumber = &s.seq
	}
	out, err := c.kinesis.GetShardIterator(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("kinesis GetShardIterator %s: %w", s.id, classify(err, c.o.WireSecond))
	}
	return out.ShardIterator, nil
}

// readShard reads one shard until it ends (nil) or ctx ends (nil), staying under half the
// shard's read limit.
func (c *Connector) readShard(ctx context.Context, emit connector.Emit, s shardStart) error {
	name := c.checkpointName(s.id)
	it, err := c.iterator(ctx, s)
	if err != nil {
		return ignoreCancel(ctx, err)
	}
	lim := rate.NewLimiter(rate.Limit(c.o.ShardReads/2/c.o.WireSecond.Seconds()), 1)
	stored := s.seq
	for {
		if err := lim.Wait(ctx); err != nil {
			return nil
		}
		out, err := c.kinesis.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it, Limit: aws.Int32(1000)})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ae smithy.APIError
			if errors.As(err, &ae) {
				switch ae.ErrorCode() {
				case "ExpiredIteratorException":
					if s.seq != "" {
						s.typ = string(ktypes.ShardIteratorTypeAfterSequenceNumber)
					}
					if it, err = c.iterator(ctx, s); err != nil {
						return ignoreCancel(ctx, err)
					}
					continue
				case "ProvisionedThroughputExceededException", "LimitExceededException":
					if !pause.For(ctx, c.o.WireSecond) {
						return nil
					}
					continue
				}
			}
			return fmt.Errorf("kinesis GetRecords %s: %w", s.id, classify(err, c.o.WireSecond))
		}
		for _, rec := range out.Records {
			for _, ev := range c.events(rec.Data) {
				if err := emit(ctx, ev); err != nil {
					if s.seq != stored {
						_ = c.o.Checkpoints.SetCheckpoint(ctx, name, s.seq)
					}
					return err
				}
			}
			s.seq = aws.ToString(rec.SequenceNumber)
		}
		if s.seq != stored {
			if err := c.o.Checkpoints.SetCheckpoint(ctx, name, s.seq); err != nil {
				return ignoreCancel(ctx, fmt.Errorf("checkpoint: %w", err))
			}
			stored = s.seq
		}
		if out.NextShardIterator == nil {
			if err := c.o.Checkpoints.SetCheckpoint(ctx, name, shardEnd); err != nil {
				return ignoreCancel(ctx, fmt.Errorf("checkpoint: %w", err))
			}
			return nil
		}
		it = out.NextShardIterator
		if len(out.Records) == 0 || aws.ToInt64(out.MillisBehindLatest) == 0 {
			if !pause.For(ctx, c.o.PollInterval) {
				return nil
			}
		}
	}
}

func ignoreCancel(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// agentEvent is an agent event stream record, as Connect writes it.
type agentEvent struct {
	AgentARN              string
	EventID               string `json:"EventId"`
	EventTimestamp        string
	EventType             string
	CurrentAgentSnapshot  *agentSnapshot
	PreviousAgentSnapshot *agentSnapshot
}

type agentSnapshot struct {
	AgentStatus struct {
		ARN, Name, StartTimestamp string
	}
	NextAgentStatus *struct {
		ARN, Name string
	}
	Contacts []struct {
		ContactID                  string `json:"ContactId"`
		Channel, InitiationMethod  string
		State, StateStartTimestamp string
		ConnectedToAgentTimestamp  *string
		Queue                      *struct{ ARN, Name string }
	}
}

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

// effective is what an agent shows: a system state while a contact holds them, else their
// agent status.
type effective struct {
	status, version string
	at              time.Time
}

func (c *Connector) effective(sn *agentSnapshot) effective {
	if state, since := systemState(sn.contacts()); state != "" {
		return effective{status: state, at: since}
	}
	id := idOfARN(sn.AgentStatus.ARN, "/agent-state/")
	if id == "" {
		c.mu.Lock()
		id = c.byName[sn.AgentStatus.Name]
		c.mu.Unlock()
		if id == "" {
			id = sn.AgentStatus.Name
		}
	}
	at := parseTime(sn.AgentStatus.StartTimestamp)
	return effective{status: id, at: at, version: version(at)}
}

func (sn *agentSnapshot) contacts() []contactView {
	out := make([]contactView, 0, len(sn.Contacts))
	for _, c := range sn.Contacts {
		out = append(out, contactView{ID: c.ContactID, Channel: c.Channel, Method: c.InitiationMethod, State: c.State,
			Start: parseTime(c.StateStartTimestamp)})
	}
	return out
}

// events turns one agent event into presence events: LOGIN and LOGOUT, a status change when
// what the agent shows changed, conversation_started for a contact that appeared and
// conversation_ended for one that ended. HEART_BEAT and configuration changes give none.
func (c *Connector) events(data []byte) []presence.Event {
	var ae agentEvent
	if err := json.Unmarshal(data, &ae); err != nil || ae.CurrentAgentSnapshot == nil {
		c.log.Warn("unreadable agent event", "err", err)
		return nil
	}
	agent := idOfARN(ae.AgentARN, "/agent/")
	at := parseTime(ae.EventTimestamp)
	cur := c.effective(ae.CurrentAgentSnapshot)
	base := presence.Event{System: c.o.System, Agent: agent, At: at}
	switch ae.EventType {
	case "LOGIN":
		// An agent who logs in showing Offline has not changed status: the login carries none.
		ev := base
		ev.ID, ev.Type = ae.EventID, presence.Login
		if !c.isOffline(cur.status, ae.CurrentAgentSnapshot.AgentStatus.Name) {
			ev.Status = cur.status
		}
		return []presence.Event{ev}
	case "LOGOUT":
		ev := base
		ev.ID, ev.Type, ev.Status = ae.EventID, presence.Logout, cur.status
		return []presence.Event{ev}
	case "STATE_CHANGE":
	default:
		return nil
	}
	var out []presence.Event
	prevContacts := map[string]string{}
	if p := ae.PreviousAgentSnapshot; p != nil {
		for _, pc := range p.Contacts {
			prevContacts[pc.ContactID] = pc.State
		}
	}
	seen := map[string]bool{}
	for _, ct := range ae.CurrentAgentSnapshot.Contacts {
		seen[ct.ContactID] = true
		data := map[string]any{"contactId": ct.ContactID, "channel": ct.Channel, "initiationMethod": ct.InitiationMethod, "state": ct.State}
		if ct.Queue != nil {
			data["queue"], data["queueArn"] = ct.Queue.Name, ct.Queue.ARN
		}
		prev, had := prevContacts[ct.ContactID]
		if !had {
			ev := base
			ev.ID, ev.Type, ev.At, ev.Data = "contact."+ct.ContactID+".started", presence.ConversationStarted, parseTime(ct.StateStartTimestamp), data
			out = append(out, ev)
		}
		if ct.State == "ENDED" && prev != "ENDED" {
			ev := base
			ev.ID, ev.Type, ev.At, ev.Data = "contact."+ct.ContactID+".ended", presence.ConversationEnded, parseTime(ct.StateStartTimestamp), data
			out = append(out, ev)
		}
	}
	for id, state := range prevContacts {
		if !seen[id] && state != "ENDED" {
			ev := base
			ev.ID, ev.Type, ev.Data = "contact."+id+".ended", presence.ConversationEnded, map[string]any{"contactId": id, "state": state}
			out = append(out, ev)
		}
	}
	var prev *effective
	if p := ae.PreviousAgentSnapshot; p != nil {
		e := c.effective(p)
		prev = &e
	}
	if prev == nil || prev.status != cur.status {
		ev := base
		ev.ID, ev.Type, ev.Status, ev.At, ev.Version = ae.EventID, presence.StatusChanged, cur.status, cur.at, cur.version
		if prev != nil && cur.at.Before(prev.at) {
			// Back from a contact to a status older than it: the change is the event's.
			ev.At, ev.Version = at, ""
		}
		ev.Data = map[string]any{"agentStatus": ae.CurrentAgentSnapshot.AgentStatus.Name}
		if n := ae.CurrentAgentSnapshot.NextAgentStatus; n != nil {
			ev.Data["nextStatus"] = n.Name
		}
		out = append(out, ev)
	}
	return out
}

// isOffline reports whether a status is the instance's OFFLINE status (by the catalog, or by
// Connect's default name before the catalog is read).
func (c *Connector) isOffline(id, name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.statuses[id]; ok {
		return st.Category == presence.CategoryOffline
	}
	return name == "Offline"
}
