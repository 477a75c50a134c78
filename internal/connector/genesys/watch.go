package genesys

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/presence"
)

// maxChannels is how many notification channels one OAuth client may hold.
const maxChannels = 20

// agentState is what the watcher last saw of one user.
type agentState struct {
	presenceID     string
	systemPresence string
	modified       time.Time
	// version is the presence's modifiedDate as Genesys wrote it: the events' Version.
	version      string
	routing      string
	routingStart time.Time
}

// convState remembers which conversation events were emitted, to emit each once.
type convState struct {
	started, ended bool
	seen           time.Time
}

// watchState survives Watch restarts so that a restart's first read reveals missed changes.
type watchState struct {
	mu     sync.Mutex
	agents map[string]*agentState
	convs  map[string]*convState
}

// Watch subscribes to every user's activity and conversations topics on notification channels
// of at most TopicsPerChannel topics each, and emits presence and routing changes as
// status_changed and calls as conversation_started/ended. Each channel is re-created on
// v2.system.socket_closing, before it expires, and (with backoff) when its socket drops or
// stops answering pings; after every (re)connect a bulk read of current presence emits what
// changed meanwhile.
//
// It subscribes .activity (presence and routing status in one topic) rather than .presence and
// .routingStatus separately: two topics per user fit 500 users in a channel, so the 20 channels
// an OAuth client may hold cover 10,000 users.
func (c *Client) Watch(ctx context.Context, emit connector.Emit) error {
	accounts, err := c.Accounts(ctx)
	if err != nil {
		return err
	}
	perChannel := max(1, c.o.TopicsPerChannel/2)
	var shards [][]string
	for lo := 0; lo < len(accounts); lo += perChannel {
		var ids []string
		for _, a := range accounts[lo:min(lo+perChannel, len(accounts))] {
			ids = append(ids, a.ID)
		}
		shards = append(shards, ids)
	}
	if len(shards) == 0 {
		// Nobody to watch: wait rather than return, so the engine does not restart in a loop.
		<-ctx.Done()
		return nil
	}
	if len(shards) > maxChannels {
		return &connector.PermanentError{Err: fmt.Errorf("genesys: %d users need %d notification channels; Genesys allows %d", len(accounts), len(shards), maxChannels)}
	}
	c.state.mu.Lock()
	if c.state.agents == nil {
		c.state.agents, c.state.convs = map[string]*agentState{}, map[string]*convState{}
	}
	c.state.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(shards))
	for _, ids := range shards {
		sh := &shard{c: c, users: ids, emit: emit, frames: make(chan frame, 256)}
		go func() { errc <- sh.run(ctx) }()
	}
	var first error
	for range shards {
		if err := <-errc; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	return first
}

// stream is one channel with its connected socket.
type stream struct {
	id      string
	conn    *websocket.Conn
	expires time.Time
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func (s *stream) close() {
	s.cancel()
	_ = s.conn.CloseNow()
	s.wg.Wait()
}

type frame struct {
	s    *stream
	data []byte
	err  error
}

type shard struct {
	c      *Client
	users  []string
	emit   connector.Emit
	frames chan frame
}

// outcome is why reading a stream stopped.
type outcome int

const (
	stopped  outcome = iota // ctx ended
	dropped                 // socket failed or stopped answering pings
	handover                // socket_closing or channel expiry near: move to a new channel
)

func (sh *shard) run(ctx context.Context) error {
	c := sh.c
	backoff := c.o.MinBackoff
	var cur *stream
	defer func() {
		if cur != nil {
			cur.close()
		}
	}()
	sleep := func() bool {
		t := time.NewTimer(backoff)
		defer t.Stop()
		backoff = min(backoff*2, c.o.MaxBackoff)
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	for ctx.Err() == nil {
		if cur == nil {
			s, err := sh.open(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				c.log.Warn("genesys: opening notification channel", "err", err)
				if !sleep() {
					return nil
				}
				continue
			}
			cur = s
		}
		if err := sh.fillGap(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if isEmitError(err) {
				return err
			}
			c.log.Warn("genesys: reading current presences", "err", err)
			cur.close()
			cur = nil
			if !sleep() {
				return nil
			}
			continue
		}
		backoff = c.o.MinBackoff
		out, err := sh.read(ctx, cur)
		if err != nil {
			return err
		}
		switch out {
		case stopped:
			return nil
		case handover:
			// Connect the new socket before leaving the old one, as Genesys asks.
			next, err := sh.open(ctx)
			cur.close()
			cur = nil
			if err == nil {
				cur = next
			} else if ctx.Err() == nil {
				c.log.Warn("genesys: replacing notification channel", "err", err)
			}
		case dropped:
			c.log.Info("genesys: notification socket lost; reconnecting", "channel", cur.id)
			cur.close()
			cur = nil
			if !sleep() {
				return nil
			}
		}
	}
	return nil
}

// open creates a channel, connects its socket and subscribes the shard's topics.
func (sh *shard) open(ctx context.Context) (*stream, error) {
	c := sh.c
	var ch struct {
		ConnectURI string `json:"connectUri"`
		ID         string `json:"id"`
		Expires    string `json:"expires"`
	}
	if err := c.doRetry(ctx, "POST", "/api/v2/notifications/channels", nil, &ch); err != nil {
		return nil, err
	}
	conn, _, err := websocket.Dial(ctx, ch.ConnectURI, &websocket.DialOptions{HTTPClient: c.http})
	if err != nil {
		return nil, fmt.Errorf("genesys: connecting %s: %w", ch.ID, err)
	}
	conn.SetReadLimit(16 << 20)
	sctx, cancel := context.WithCancel(context.Background())
	s := &stream{id: ch.ID, conn: conn, cancel: cancel}
	s.expires, err = time.Parse(time.RFC3339Nano, ch.Expires)
	if err != nil {
		s.expires = time.Now().Add(24 * time.Hour)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			_, data, err := conn.Read(sctx)
			select {
			case sh.frames <- frame{s: s, data: data, err: err}:
			case <-sctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	topics := make([]idReference, 0, 2*len(sh.users))
	for _, u := range sh.users {
		topics = append(topics, idReference{ID: "v2.users." + u + ".activity"}, idReference{ID: "v2.users." + u + ".conversations"})
	}
	if err := c.doRetry(ctx, "PUT", "/api/v2/notifications/channels/"+ch.ID+"/subscriptions", topics, nil); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// renewMargin is how long before its expiry a channel is replaced.
func renewMargin(life time.Duration) time.Duration { return min(time.Hour, life/10) }

// read processes the stream's frames until it ends, needs replacing, or ctx ends.
func (sh *shard) read(ctx context.Context, cur *stream) (outcome, error) {
	ping := time.NewTicker(sh.c.o.PingInterval)
	defer ping.Stop()
	life := time.Until(cur.expires)
	renew := time.NewTimer(life - renewMargin(life))
	defer renew.Stop()
	awaitingPong := false
	for {
		select {
		case <-ctx.Done():
			return stopped, nil
		case <-renew.C:
			return handover, nil
		case <-ping.C:
			if awaitingPong {
				return dropped, nil
			}
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := cur.conn.Write(wctx, websocket.MessageText, []byte(`{"message":"ping"}`))
			cancel()
			if err != nil {
				return dropped, nil
			}
			awaitingPong = true
		case f := <-sh.frames:
			if f.err != nil {
				if f.s == cur {
					return dropped, nil
				}
				continue
			}
			var msg struct {
				TopicName string          `json:"topicName"`
				EventBody json.RawMessage `json:"eventBody"`
			}
			if json.Unmarshal(f.data, &msg) != nil {
				continue
			}
			switch {
			case msg.TopicName == "channel.metadata":
				var b struct {
					Message string `json:"message"`
				}
				if json.Unmarshal(msg.EventBody, &b) == nil && b.Message == "pong" {
					awaitingPong = false
				}
			case msg.TopicName == "v2.system.socket_closing":
				if f.s == cur {
					return handover, nil
				}
			case strings.HasSuffix(msg.TopicName, ".activity"):
				if err := sh.onActivity(ctx, msg.EventBody); err != nil {
					return stopped, err
				}
			case strings.HasSuffix(msg.TopicName, ".conversations"):
				user := strings.TrimSuffix(strings.TrimPrefix(msg.TopicName, "v2.users."), ".conversations")
				if err := sh.onConversation(ctx, user, msg.EventBody); err != nil {
					return stopped, err
				}
			}
		}
	}
}

// emitError marks a failure of emit, which ends Watch.
type emitError struct{ err error }

func (e *emitError) Error() string { return e.err.Error() }
func (e *emitError) Unwrap() error { return e.err }

func isEmitError(err error) bool {
	_, ok := err.(*emitError)
	return ok
}

func (sh *shard) send(ctx context.Context, ev presence.Event) error {
	ev.System = sh.c.o.System
	if err := sh.emit(ctx, ev); err != nil {
		return &emitError{err: err}
	}
	return nil
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Now().UTC()
	}
	return t
}

// presenceChanged updates the state with a presence observation and returns the event to emit,
// if it is news. The first observation of a user is emitted marked as a resync (data source
// "resync"): the engine takes it as a baseline, or as a change it missed while not watching.
func (c *Client) presenceChanged(user, defID, systemPresence, modifiedDate string) (presence.Event, bool) {
	modified := parseTime(modifiedDate)
	c.state.mu.Lock()
	defer c.state.mu.Unlock()
	sp := systemPresenceKey(systemPresence)
	st := c.state.agents[user]
	if st == nil {
		st = &agentState{}
		c.state.agents[user] = st
		st.presenceID, st.systemPresence, st.modified, st.version = defID, sp, modified, modifiedDate
		if sp != "ON_QUEUE" {
			// Routing status is OFF_QUEUE whenever presence is not On Queue.
			st.routing = "OFF_QUEUE"
		}
		return presence.Event{Agent: user, Type: presence.StatusChanged, Status: defID, At: modified, Version: modifiedDate,
			Data: map[string]any{"systemPresence": sp, "source": presence.SourceResync}}, true
	}
	if modified.Before(st.modified) || st.presenceID == defID && st.modified.Equal(modified) {
		return presence.Event{}, false
	}
	st.presenceID, st.systemPresence, st.modified, st.version = defID, sp, modified, modifiedDate
	ev := presence.Event{Agent: user, Type: presence.StatusChanged, Status: defID, At: modified, Version: modifiedDate,
		Data: map[string]any{"systemPresence": sp}}
	return ev, true
}

func (c *Client) routingChanged(user, status string, start time.Time) (presence.Event, bool) {
	c.state.mu.Lock()
	defer c.state.mu.Unlock()
	st := c.state.agents[user]
	if st == nil || status == "" || start.Before(st.routingStart) || st.routing == status {
		if st != nil && status != "" && !start.Before(st.routingStart) {
			st.routingStart = start
		}
		return presence.Event{}, false
	}
	st.routing, st.routingStart = status, start
	// The presence has not changed: the event reports the presence the user has, dated and
	// versioned as that presence, so that it can be no write's echo and no one's change; the
	// routing status and its start ride in its data.
	return presence.Event{Agent: user, Type: presence.StatusChanged, Status: st.presenceID, At: st.modified, Version: st.version,
		Data: map[string]any{"systemPresence": st.systemPresence, "routingStatus": status, "routingStart": start.UTC().Format(time.RFC3339Nano)}}, true
}

func (sh *shard) fillGap(ctx context.Context) error {
	ups, err := sh.c.currentPresences(ctx, sh.users)
	if err != nil {
		return err
	}
	for _, p := range ups {
		if ev, ok := sh.c.presenceChanged(p.UserID, p.PresenceDefinition.ID, p.PresenceDefinition.SystemPresence, p.ModifiedDate); ok {
			if err := sh.send(ctx, ev); err != nil {
				return err
			}
		}
	}
	return nil
}

type activityBody struct {
	ID            string `json:"id"`
	RoutingStatus struct {
		Status    string `json:"status"`
		StartTime string `json:"startTime"`
	} `json:"routingStatus"`
	Presence struct {
		PresenceDefinition struct {
			ID             string `json:"id"`
			SystemPresence string `json:"systemPresence"`
		} `json:"presenceDefinition"`
		ModifiedDate string `json:"modifiedDate"`
	} `json:"presence"`
}

func (sh *shard) onActivity(ctx context.Context, raw json.RawMessage) error {
	var b activityBody
	if json.Unmarshal(raw, &b) != nil || b.ID == "" {
		return nil
	}
	if pd := b.Presence.PresenceDefinition; pd.ID != "" {
		if ev, ok := sh.c.presenceChanged(b.ID, pd.ID, pd.SystemPresence, b.Presence.ModifiedDate); ok {
			if err := sh.send(ctx, ev); err != nil {
				return err
			}
		}
	}
	if rs := b.RoutingStatus; rs.Status != "" {
		if ev, ok := sh.c.routingChanged(b.ID, rs.Status, parseTime(rs.StartTime)); ok {
			return sh.send(ctx, ev)
		}
	}
	return nil
}

type mediaSession struct {
	ID               string `json:"id"`
	State            string `json:"state"`
	Direction        string `json:"direction"`
	ConnectedTime    string `json:"connectedTime"`
	DisconnectedTime string `json:"disconnectedTime"`
}

type conversationBody struct {
	ID           string `json:"id"`
	Participants []struct {
		ID        string         `json:"id"`
		UserID    string         `json:"userId"`
		QueueID   string         `json:"queueId"`
		Purpose   string         `json:"purpose"`
		Calls     []mediaSession `json:"calls"`
		Callbacks []mediaSession `json:"callbacks"`
		Chats     []mediaSession `json:"chats"`
		Emails    []mediaSession `json:"emails"`
		Messages  []mediaSession `json:"messages"`
	} `json:"participants"`
}

// convRetention is how long an ended conversation is remembered for deduplication.
const convRetention = time.Hour

func (sh *shard) onConversation(ctx context.Context, user string, raw json.RawMessage) error {
	var b conversationBody
	if json.Unmarshal(raw, &b) != nil || b.ID == "" {
		return nil
	}
	for _, p := range b.Participants {
		if p.UserID != user {
			continue
		}
		var media string
		var sess mediaSession
		for _, m := range []struct {
			name     string
			sessions []mediaSession
		}{{"VOICE", p.Calls}, {"CALLBACK", p.Callbacks}, {"CHAT", p.Chats}, {"EMAIL", p.Emails}, {"MESSAGE", p.Messages}} {
			if len(m.sessions) > 0 {
				media, sess = m.name, m.sessions[len(m.sessions)-1]
				break
			}
		}
		if media == "" {
			continue
		}
		var typ presence.EventType
		at := ""
		switch strings.ToLower(sess.State) {
		case "connected":
			typ, at = presence.ConversationStarted, sess.ConnectedTime
		case "disconnected", "terminated":
			typ, at = presence.ConversationEnded, sess.DisconnectedTime
		default:
			continue
		}
		if !sh.c.firstConvEvent(b.ID+"/"+user, typ) {
			continue
		}
		data := map[string]any{"conversationId": b.ID, "participantId": p.ID, "direction": strings.ToUpper(sess.Direction),
			"mediaType": media, "purpose": p.Purpose}
		if p.QueueID != "" {
			data["queueId"] = p.QueueID
		}
		phase := "start"
		if typ == presence.ConversationEnded {
			phase = "end"
		}
		ev := presence.Event{ID: "conversation." + b.ID + ".user." + user + "." + phase, Agent: user, Type: typ, At: parseTime(at), Data: data}
		if err := sh.send(ctx, ev); err != nil {
			return err
		}
	}
	return nil
}

// firstConvEvent reports whether typ was not yet emitted for the conversation key.
func (c *Client) firstConvEvent(key string, typ presence.EventType) bool {
	c.state.mu.Lock()
	defer c.state.mu.Unlock()
	now := time.Now()
	st := c.state.convs[key]
	if st == nil {
		for k, s := range c.state.convs {
			if s.ended && now.Sub(s.seen) > convRetention {
				delete(c.state.convs, k)
			}
		}
		st = &convState{}
		c.state.convs[key] = st
	}
	st.seen = now
	switch typ {
	case presence.ConversationStarted:
		if st.started || st.ended {
			return false
		}
		st.started = true
	case presence.ConversationEnded:
		if st.ended {
			return false
		}
		st.ended = true
	}
	return true
}
