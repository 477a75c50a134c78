package genesys

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Notification limits of Genesys Cloud.
const (
	maxChannels      = 20
	maxTopics        = 1000
	socketBufferSize = 4096
)

var userTopic = regexp.MustCompile(`^v2\.users\.([0-9A-Za-z-]+)\.(presence|routingStatus|activity|conversations|conversationsummary|outofoffice|station|integrationpresence)$`)

// hub holds the notification channels and their sockets.
type hub struct {
	s *Server

	mu       sync.Mutex
	channels map[string]*channel
	timers   map[*time.Timer]bool
	seq      uint64
	wg       sync.WaitGroup
}

// evictsBefore orders channels for eviction: unconnected first, then least recently used.
func evictsBefore(a, b *channel) bool {
	if (a.sock == nil) != (b.sock == nil) {
		return a.sock == nil
	}
	if !a.lastUsed.Equal(b.lastUsed) {
		return a.lastUsed.Before(b.lastUsed)
	}
	return a.seq < b.seq
}

type channel struct {
	id       string
	seq      uint64
	lastUsed time.Time
	expires  time.Time
	topics   map[string]bool
	sock     *socket
	// accepting counts handshakes under way; while one is, events wait in backlog, because
	// the client may already act on its open socket before the server registered it.
	accepting int
	backlog   [][]byte
	// conns numbers connection attempts as they arrive; sockN is the number of the socket in
	// place. The newest connection wins whatever order the handshakes finish in.
	conns, sockN uint64
	// onRegister holds faults issued while a handshake was under way; they apply to the socket
	// as soon as it registers (a real vendor's socket exists once its handshake is done).
	onRegister []func(c *channel, sock *socket)
}

type socket struct {
	conn   *websocket.Conn
	out    chan []byte
	cancel context.CancelFunc
	// muted sockets stay open but deliver nothing, not even pongs: a half-open connection.
	muted atomic.Bool
}

func newHub(s *Server) *hub {
	return &hub{s: s, channels: map[string]*channel{}, timers: map[*time.Timer]bool{}}
}

func (s *Server) notificationRoutes(m *http.ServeMux) {
	h := s.hub
	m.HandleFunc("POST /api/v2/notifications/channels", h.createChannel)
	m.HandleFunc("GET /api/v2/notifications/channels", h.listChannels)
	m.HandleFunc("HEAD /api/v2/notifications/channels/{id}", h.headChannel)
	m.HandleFunc("GET /api/v2/notifications/channels/{id}/subscriptions", h.getSubscriptions)
	m.HandleFunc("POST /api/v2/notifications/channels/{id}/subscriptions", h.subscribe(false))
	m.HandleFunc("PUT /api/v2/notifications/channels/{id}/subscriptions", h.subscribe(true))
	m.HandleFunc("DELETE /api/v2/notifications/channels/{id}/subscriptions", h.unsubscribeAll)
}

func connectURI(r *http.Request, id string) string {
	scheme := "ws"
	if r.TLS != nil {
		scheme = "wss"
	}
	return scheme + "://" + r.Host + "/channels/" + id
}

func (h *hub) createChannel(w http.ResponseWriter, r *http.Request) {
	now := h.s.cfg.Now()
	ch := &channel{id: "streaming-" + newUUID(), lastUsed: now, expires: now.Add(h.s.cfg.ChannelTTL), topics: map[string]bool{}}
	h.mu.Lock()
	h.expireLocked(now)
	if len(h.channels) >= maxChannels {
		// The 21st channel evicts the least recently used one, unconnected channels first.
		var victim *channel
		for _, c := range h.channels {
			if victim == nil || evictsBefore(c, victim) {
				victim = c
			}
		}
		h.removeLocked(victim)
	}
	h.seq++
	ch.seq = h.seq
	h.channels[ch.id] = ch
	h.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"connectUri": connectURI(r, ch.id), "id": ch.id, "expires": isoTime(ch.expires)})
}

// expireLocked removes channels past their expiry.
func (h *hub) expireLocked(now time.Time) {
	for _, c := range h.channels {
		if !now.Before(c.expires) {
			h.removeLocked(c)
		}
	}
}

func (h *hub) removeLocked(c *channel) {
	delete(h.channels, c.id)
	if c.sock != nil {
		h.closeSock(c.sock, websocket.StatusNormalClosure, "channel removed")
		c.sock = nil
	}
}

// closeSock closes sock with a close handshake in the background, so that a slow peer does not
// hold the hub; closeAll waits for it.
func (h *hub) closeSock(sock *socket, code websocket.StatusCode, reason string) {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		_ = sock.conn.Close(code, reason)
		sock.cancel()
	}()
}

func (h *hub) listChannels(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.expireLocked(h.s.cfg.Now())
	var out []any
	for _, c := range h.channels {
		out = append(out, map[string]any{"connectUri": connectURI(r, c.id), "id": c.id, "expires": isoTime(c.expires)})
	}
	h.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		return out[i].(map[string]any)["id"].(string) < out[j].(map[string]any)["id"].(string)
	})
	writeJSON(w, http.StatusOK, map[string]any{"entities": nonNil(out)})
}

func (h *hub) lookup(id string) *channel {
	h.expireLocked(h.s.cfg.Now())
	return h.channels[id]
}

func (h *hub) headChannel(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	c := h.lookup(r.PathValue("id"))
	h.mu.Unlock()
	if c == nil {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func subscriptionsModel(c *channel) map[string]any {
	var out []any
	for _, t := range sortedTopics(c) {
		out = append(out, map[string]any{"id": t, "state": "Permitted", "selfUri": "/api/v2/notifications/channels/" + c.id + "/subscriptions"})
	}
	return map[string]any{"entities": nonNil(out)}
}

func sortedTopics(c *channel) []string {
	out := make([]string, 0, len(c.topics))
	for t := range c.topics {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

func (h *hub) getSubscriptions(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.lookup(r.PathValue("id"))
	if c == nil {
		h.s.notFound(w, "Channel")
		return
	}
	writeJSON(w, http.StatusOK, subscriptionsModel(c))
}

// expandTopics turns topic ids (possibly combined, "v2.users.X?presence&routingStatus") into
// topic names; ignoreErrors drops invalid ones instead of failing.
func expandTopics(ids []string, ignoreErrors bool) ([]string, error) {
	var out []string
	for _, id := range ids {
		names := []string{id}
		if base, subs, ok := strings.Cut(id, "?"); ok {
			if len(id) > 200 {
				return nil, fmt.Errorf("combined topic %q is longer than 200 characters", id)
			}
			names = names[:0]
			for _, sub := range strings.Split(subs, "&") {
				names = append(names, base+"."+sub)
			}
		}
		for _, n := range names {
			if !userTopic.MatchString(n) {
				if ignoreErrors {
					continue
				}
				return nil, fmt.Errorf("invalid topic %q", n)
			}
			out = append(out, n)
		}
	}
	return out, nil
}

func (h *hub) subscribe(replace bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body []struct {
			ID string `json:"id"`
		}
		if err := decodeBody(r, &body); err != nil {
			h.s.badRequest(w, err.Error())
			return
		}
		ids := make([]string, len(body))
		for i, b := range body {
			ids[i] = b.ID
		}
		topics, err := expandTopics(ids, r.URL.Query().Get("ignoreErrors") == "true")
		if err != nil {
			h.s.badRequest(w, err.Error())
			return
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		c := h.lookup(r.PathValue("id"))
		if c == nil {
			h.s.notFound(w, "Channel")
			return
		}
		if status, msg := h.addTopicsLocked(c, topics, replace); status != 0 {
			h.s.apiError(w, status, "bad.request", msg)
			return
		}
		writeJSON(w, http.StatusOK, subscriptionsModel(c))
	}
}

// addTopicsLocked subscribes c to topics, enforcing the per-channel cap, and renews the channel.
func (h *hub) addTopicsLocked(c *channel, topics []string, replace bool) (int, string) {
	next := map[string]bool{}
	if !replace {
		for t := range c.topics {
			next[t] = true
		}
	}
	for _, t := range topics {
		next[t] = true
	}
	if len(next) > maxTopics {
		return http.StatusBadRequest, fmt.Sprintf("A channel can be subscribed to at most %d topics; the request would make %d", maxTopics, len(next))
	}
	now := h.s.cfg.Now()
	c.topics, c.lastUsed, c.expires = next, now, now.Add(h.s.cfg.ChannelTTL)
	return 0, ""
}

func (h *hub) unsubscribeAll(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.lookup(r.PathValue("id"))
	if c == nil {
		h.s.notFound(w, "Channel")
		return
	}
	c.topics = map[string]bool{}
	w.WriteHeader(http.StatusNoContent)
}

// --- the WebSocket ----------------------------------------------------------------------

func envelope(topic string, body any) []byte {
	b, _ := json.Marshal(map[string]any{"topicName": topic, "version": "2", "eventBody": body,
		"metadata": map[string]any{"CorrelationId": newUUID()}})
	return b
}

func heartbeat() []byte {
	b, _ := json.Marshal(map[string]any{"topicName": "channel.metadata", "eventBody": map[string]any{"message": "WebSocket Heartbeat"}})
	return b
}

func (h *hub) serveSocket(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	c := h.lookup(r.PathValue("channelId"))
	h.mu.Unlock()
	if c == nil {
		http.Error(w, "channel not found", http.StatusNotFound)
		return
	}
	h.mu.Lock()
	c.accepting++
	c.conns++
	n := c.conns
	h.mu.Unlock()
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		h.mu.Lock()
		if c.accepting--; c.accepting == 0 {
			c.backlog, c.onRegister = nil, nil
		}
		h.mu.Unlock()
		return
	}
	conn.SetReadLimit(maxBody)
	ctx, cancel := context.WithCancel(context.Background())
	sock := &socket{conn: conn, out: make(chan []byte, socketBufferSize), cancel: cancel}
	h.mu.Lock()
	c.accepting--
	if h.channels[c.id] != c {
		c.backlog, c.onRegister = nil, nil
		h.mu.Unlock()
		cancel()
		_ = conn.Close(websocket.StatusPolicyViolation, "channel removed")
		return
	}
	if c.sock != nil && c.sockN > n {
		// A newer connection is already in place: this older one is the replaced one.
		h.mu.Unlock()
		cancel()
		_ = conn.Close(websocket.StatusNormalClosure, "replaced by a new connection")
		return
	}
	if old := c.sock; old != nil {
		// One WebSocket per channel: the new connection disconnects the old one.
		h.closeSock(old, websocket.StatusNormalClosure, "replaced by a new connection")
	}
	c.sock, c.sockN, c.lastUsed = sock, n, h.s.cfg.Now()
	for _, msg := range c.backlog {
		h.send(sock, msg)
	}
	c.backlog = nil
	for _, fault := range c.onRegister {
		fault(c, sock)
	}
	c.onRegister = nil
	h.wg.Add(1)
	h.mu.Unlock()
	defer h.wg.Done()
	h.s.log.Debug("socket connected", "channel", c.id)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		h.writeLoop(ctx, c, sock)
	}()
	h.readLoop(ctx, c, sock)
	cancel()
	wg.Wait()
	_ = conn.CloseNow()
	h.mu.Lock()
	if c.sock == sock {
		c.sock = nil
	}
	h.mu.Unlock()
}

func (h *hub) writeLoop(ctx context.Context, c *channel, sock *socket) {
	tick := time.NewTicker(h.s.cfg.HeartbeatInterval)
	defer tick.Stop()
	for {
		var msg []byte
		select {
		case <-ctx.Done():
			return
		case msg = <-sock.out:
		case <-tick.C:
			if sock.muted.Load() {
				continue
			}
			h.mu.Lock()
			expired := !h.s.cfg.Now().Before(c.expires)
			if expired && h.channels[c.id] == c {
				h.removeLocked(c)
			}
			h.mu.Unlock()
			if expired {
				return
			}
			msg = heartbeat()
		}
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		err := sock.conn.Write(wctx, websocket.MessageText, msg)
		wcancel()
		if err != nil {
			sock.cancel()
			_ = sock.conn.CloseNow()
			return
		}
	}
}

func (h *hub) readLoop(ctx context.Context, c *channel, sock *socket) {
	for {
		_, data, err := sock.conn.Read(ctx)
		if err != nil {
			return
		}
		var msg struct {
			Message       string   `json:"message"`
			Topics        []string `json:"topics"`
			CorrelationID string   `json:"correlationId"`
		}
		if err := json.Unmarshal(data, &msg); err != nil {
			h.send(sock, mustJSON(map[string]any{"result": "400", "status": "error", "message": "invalid message"}))
			continue
		}
		switch msg.Message {
		case "ping":
			h.send(sock, mustJSON(map[string]any{"topicName": "channel.metadata", "eventBody": map[string]any{"message": "pong"}}))
		case "subscribe":
			reply := map[string]any{"result": "200", "status": "subscribed"}
			topics, err := expandTopics(msg.Topics, false)
			if err == nil {
				h.mu.Lock()
				if status, m := h.addTopicsLocked(c, topics, false); status != 0 {
					err = fmt.Errorf("%s", m)
				}
				h.mu.Unlock()
			}
			if err != nil {
				reply = map[string]any{"result": "400", "status": "error", "message": err.Error()}
			}
			if msg.CorrelationID != "" {
				reply["correlationId"] = msg.CorrelationID
			}
			h.send(sock, mustJSON(reply))
		default:
			h.send(sock, mustJSON(map[string]any{"result": "400", "status": "error", "message": "unknown message " + msg.Message}))
		}
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// send queues msg on sock; a socket whose queue is full is dropped, as a slow consumer.
func (h *hub) send(sock *socket, msg []byte) {
	if sock.muted.Load() {
		return
	}
	select {
	case sock.out <- msg:
	default:
		sock.cancel()
		_ = sock.conn.CloseNow()
	}
}

// publish delivers an event to every connected channel subscribed to topic.
func (h *hub) publish(topic string, body func() any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var msg []byte
	for _, c := range h.channels {
		if !c.topics[topic] || (c.sock == nil && c.accepting == 0) {
			continue
		}
		if msg == nil {
			msg = envelope(topic, body())
		}
		if c.sock == nil {
			if len(c.backlog) < socketBufferSize {
				c.backlog = append(c.backlog, msg)
			}
			continue
		}
		h.send(c.sock, msg)
	}
}

// dropAll drops every socket, as a network failure would.
func (h *hub) dropAll() {
	h.faultAll(func(c *channel, sock *socket) {
		sock.cancel()
		_ = sock.conn.CloseNow()
		if c.sock == sock {
			c.sock = nil
		}
	})
}

// muteAll leaves every socket open but silent: a half-open connection.
func (h *hub) muteAll() {
	h.faultAll(func(_ *channel, sock *socket) { sock.muted.Store(true) })
}

// closingAll announces v2.system.socket_closing on every socket and closes it after grace.
func (h *hub) closingAll(grace time.Duration) {
	msg := envelope("v2.system.socket_closing", map[string]any{"message": "The WebSocket is closing for maintenance; connect a new WebSocket"})
	h.faultAll(func(_ *channel, sock *socket) {
		h.send(sock, msg)
		var t *time.Timer
		t = time.AfterFunc(grace, func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.timers[t] {
				delete(h.timers, t)
				h.closeSock(sock, websocket.StatusGoingAway, "maintenance")
			}
		})
		h.timers[t] = true
	})
}

// faultAll applies fault, under the hub's lock, to every channel's socket, and to sockets
// whose handshake is under way as soon as they register.
func (h *hub) faultAll(fault func(c *channel, sock *socket)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.channels {
		if c.sock != nil {
			fault(c, c.sock)
		} else if c.accepting > 0 {
			c.onRegister = append(c.onRegister, fault)
		}
	}
}

func (h *hub) closeAll() {
	h.mu.Lock()
	for t := range h.timers {
		t.Stop()
	}
	h.timers = map[*time.Timer]bool{}
	for _, c := range h.channels {
		if c.sock != nil {
			c.sock.cancel()
			_ = c.sock.conn.CloseNow()
			c.sock = nil
		}
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// --- the events a user's changes produce ------------------------------------------------

func (s *Server) presenceEvent(u *user) map[string]any {
	d := s.org.defByID[u.presenceID]
	return map[string]any{
		"source": "PURECLOUD", "presenceDefinition": map[string]any{"id": d.ID, "systemPresence": eventSpelling(d.SystemPresence)},
		"primary": true, "message": u.presenceMessage, "modifiedDate": isoTime(u.presenceModified),
	}
}

func (s *Server) publishPresence(u *user) {
	s.hub.publish("v2.users."+u.ID+".presence", func() any { return s.presenceEvent(u) })
}

func (s *Server) publishRouting(u *user) {
	s.hub.publish("v2.users."+u.ID+".routingStatus", func() any {
		return map[string]any{"id": u.ID, "routingStatus": map[string]any{"status": u.routing, "startTime": isoTime(u.routingStart)}}
	})
}

func (s *Server) publishActivity(u *user) {
	s.hub.publish("v2.users."+u.ID+".activity", func() any {
		d := s.org.defByID[u.presenceID]
		return map[string]any{
			"id":            u.ID,
			"routingStatus": map[string]any{"status": u.routing, "startTime": isoTime(u.routingStart)},
			"presence": map[string]any{"presenceDefinition": map[string]any{"id": d.ID, "systemPresence": eventSpelling(d.SystemPresence)},
				"presenceMessage": u.presenceMessage, "modifiedDate": isoTime(u.presenceModified)},
			"outOfOffice":    map[string]any{"active": false},
			"activeQueueIds": []string{},
		}
	})
}

func (s *Server) publishConversation(u *user, c *conversation, state string) {
	s.hub.publish("v2.users."+u.ID+".conversations", func() any { return conversationModel(u, c, state) })
}
