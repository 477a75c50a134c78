package amazonconnect

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// stream is the Kinesis data stream of the agent events.
type stream struct {
	name, arn string
	created   time.Time
	shards    []*shard
	seq       uint64
	nextShard int
}

// shard is one shard: a hash key range and its records, in order.
type shard struct {
	id, parent, adjacent string
	lo, hi               *big.Int
	startSeq, endSeq     string
	closed               bool
	// first is the absolute index of records[0]: trimmed records move it on.
	first   int
	records []record
}

// record is one Kinesis record.
type record struct {
	n    uint64
	at   time.Time
	data []byte
	key  string
}

// seqOf renders a sequence number: 56 decimal digits, increasing across the stream.
func seqOf(n uint64) string { return fmt.Sprintf("49%054d", n) }

func parseSeq(s string) (uint64, bool) {
	if len(s) != 56 || !strings.HasPrefix(s, "49") {
		return 0, false
	}
	n, err := strconv.ParseUint(s[2:], 10, 64)
	return n, err == nil
}

var maxHash = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))

func newStream(s *Server, shards int) *stream {
	st := &stream{name: s.cfg.Stream, created: s.now(),
		arn: fmt.Sprintf("arn:aws:kinesis:%s:%s:stream/%s", s.cfg.Region, s.cfg.AccountID, s.cfg.Stream)}
	width := new(big.Int).Div(new(big.Int).Add(maxHash, big.NewInt(1)), big.NewInt(int64(shards)))
	for i := range shards {
		lo := new(big.Int).Mul(width, big.NewInt(int64(i)))
		hi := new(big.Int).Sub(new(big.Int).Add(lo, width), big.NewInt(1))
		if i == shards-1 {
			hi = new(big.Int).Set(maxHash)
		}
		st.addShard(lo, hi, "", "")
	}
	return st
}

func (st *stream) addShard(lo, hi *big.Int, parent, adjacent string) *shard {
	sh := &shard{id: fmt.Sprintf("shardId-%012d", st.nextShard), lo: lo, hi: hi, parent: parent, adjacent: adjacent,
		startSeq: seqOf(st.seq + 1)}
	st.nextShard++
	st.shards = append(st.shards, sh)
	return sh
}

func (st *stream) shard(id string) *shard {
	for _, sh := range st.shards {
		if sh.id == id {
			return sh
		}
	}
	return nil
}

// end is the absolute index after the shard's last record.
func (sh *shard) end() int { return sh.first + len(sh.records) }

// put appends a record to the open shard the partition key hashes to.
func (st *stream) put(key string, data []byte, at time.Time, retention time.Duration) {
	h := hashKey(key)
	k := new(big.Int).SetBytes(h[:])
	for _, sh := range st.shards {
		if sh.closed || k.Cmp(sh.lo) < 0 || k.Cmp(sh.hi) > 0 {
			continue
		}
		st.seq++
		sh.records = append(sh.records, record{n: st.seq, at: at, data: data, key: key})
		for len(sh.records) > 0 && at.Sub(sh.records[0].at) > retention {
			sh.records = sh.records[1:]
			sh.first++
		}
		return
	}
}

// reshard splits every open shard in two at the middle of its hash range.
func (st *stream) reshard() {
	open := []*shard{}
	for _, sh := range st.shards {
		if !sh.closed {
			open = append(open, sh)
		}
	}
	for _, sh := range open {
		sh.closed, sh.endSeq = true, seqOf(st.seq)
		mid := new(big.Int).Rsh(new(big.Int).Add(sh.lo, sh.hi), 1)
		st.addShard(sh.lo, mid, sh.id, "")
		st.addShard(new(big.Int).Add(mid, big.NewInt(1)), sh.hi, sh.id, "")
	}
}

// publish writes an agent event for u to the stream (s.mu held).
func (s *Server) publish(u *user, typ string, prev *snapshot) {
	now := s.now()
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	x := hex.EncodeToString(id)
	ev := agentEvent{AWSAccountID: s.cfg.AccountID, AgentARN: u.arn, CurrentAgentSnapshot: s.snapshot(u),
		EventID:        x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32],
		EventTimestamp: iso(now), EventType: typ, InstanceARN: s.instanceARN, PreviousAgentSnapshot: prev,
		Version: "2017-10-01"}
	data, err := json.Marshal(ev)
	if err != nil {
		s.log.Error("agent event", "err", err)
		return
	}
	u.lastEvent = now
	s.stream.put(u.arn, data, now, s.cfg.Retention)
}

// heartbeats sends HEART_BEAT for logged-in agents with no other event for an interval.
func (s *Server) heartbeats() {
	t := time.NewTicker(max(s.cfg.HeartbeatInterval/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.mu.Lock()
		now := s.now()
		for _, u := range s.users {
			if u.loggedIn && now.Sub(u.lastEvent) >= s.cfg.HeartbeatInterval {
				s.publish(u, "HEART_BEAT", nil)
			}
		}
		s.mu.Unlock()
	}
}

// iterator is the state a shard iterator carries.
type iterator struct {
	Shard  string `json:"s"`
	Pos    int    `json:"p"`
	Issued int64  `json:"t"`
	Stream string `json:"n"`
}

func (it iterator) String() string {
	b, _ := json.Marshal(it)
	nonce := make([]byte, 12)
	_, _ = rand.Read(nonce)
	return base64.StdEncoding.EncodeToString(append(nonce, b...))
}

func parseIterator(s string) (iterator, bool) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) < 13 {
		return iterator{}, false
	}
	var it iterator
	return it, json.Unmarshal(b[12:], &it) == nil
}

// kinesis serves the Kinesis JSON 1.1 operations: POST / with X-Amz-Target.
func (s *Server) kinesis(w http.ResponseWriter, r *http.Request) {
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "Kinesis_20131202.")
	if !ok {
		connectError(w, http.StatusNotFound, "UnknownOperationException", "No such operation: POST /")
		return
	}
	s.count(op)
	var req struct {
		StreamName, StreamARN  string
		ShardID                string `json:"ShardId"`
		ShardIteratorType      string
		StartingSequenceNumber string
		Timestamp              *float64
		ShardIterator          string
		Limit, MaxResults      int
		NextToken              string
		ExclusiveStartShardID  string `json:"ExclusiveStartShardId"`
		ShardFilter            *struct{ Type string }
	}
	if !decode(w, r, &req) {
		return
	}
	requestID(w)
	// The answer is built under the lock and sent after it, so a slow reader holds up nobody.
	buf := &buffered{ResponseWriter: w, status: http.StatusOK}
	defer buf.flush()
	w = buf
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stream
	if op != "GetRecords" && op != "ListShards" || op == "ListShards" && req.NextToken == "" {
		if req.StreamName != st.name && req.StreamARN != st.arn {
			name := req.StreamName
			if name == "" {
				name = req.StreamARN
			}
			kinesisError(w, http.StatusBadRequest, "ResourceNotFoundException", fmt.Sprintf("Stream %s under account %s not found.", name, s.cfg.AccountID))
			return
		}
	}
	switch op {
	case "DescribeStreamSummary":
		openShards := 0
		for _, sh := range st.shards {
			if !sh.closed {
				openShards++
			}
		}
		writeJSON(w, "application/x-amz-json-1.1", map[string]any{"StreamDescriptionSummary": map[string]any{
			"StreamName": st.name, "StreamARN": st.arn, "StreamStatus": "ACTIVE",
			"StreamModeDetails": map[string]string{"StreamMode": "PROVISIONED"}, "RetentionPeriodHours": int(s.cfg.Retention.Hours()),
			"StreamCreationTimestamp": epoch(st.created), "EnhancedMonitoring": []any{map[string]any{"ShardLevelMetrics": []string{}}},
			"EncryptionType": "NONE", "OpenShardCount": openShards, "ConsumerCount": 0}})
	case "ListShards":
		s.listShards(w, st, req.NextToken, req.MaxResults, req.ExclusiveStartShardID, req.ShardFilter != nil && req.ShardFilter.Type == "AT_LATEST")
	case "GetShardIterator":
		s.getShardIterator(w, st, req.ShardID, req.ShardIteratorType, req.StartingSequenceNumber, req.Timestamp)
	case "GetRecords":
		s.getRecords(w, st, req.ShardIterator, req.Limit)
	default:
		kinesisError(w, http.StatusBadRequest, "UnknownOperationException", "Operation "+op+" is not supported by this simulator")
	}
}

func (s *Server) shardJSON(sh *shard) map[string]any {
	rng := map[string]string{"StartingSequenceNumber": sh.startSeq}
	if sh.closed {
		rng["EndingSequenceNumber"] = sh.endSeq
	}
	m := map[string]any{"ShardId": sh.id, "HashKeyRange": map[string]string{"StartingHashKey": sh.lo.String(), "EndingHashKey": sh.hi.String()},
		"SequenceNumberRange": rng}
	if sh.parent != "" {
		m["ParentShardId"] = sh.parent
	}
	if sh.adjacent != "" {
		m["AdjacentParentShardId"] = sh.adjacent
	}
	return m
}

func (s *Server) listShards(w http.ResponseWriter, st *stream, token string, maxResults int, after string, openOnly bool) {
	var list []*shard
	for _, sh := range st.shards {
		if (!openOnly || !sh.closed) && (after == "" || sh.id > after) {
			list = append(list, sh)
		}
	}
	from, to, next, err := page(len(list), token, maxResults, 1000, 10000)
	if err != nil {
		kinesisError(w, http.StatusBadRequest, "InvalidArgumentException", err.Error())
		return
	}
	out := []map[string]any{}
	for _, sh := range list[from:to] {
		out = append(out, s.shardJSON(sh))
	}
	resp := map[string]any{"Shards": out}
	if next != "" {
		resp["NextToken"] = next
	}
	writeJSON(w, "application/x-amz-json-1.1", resp)
}

func (s *Server) getShardIterator(w http.ResponseWriter, st *stream, shardID, typ, seq string, ts *float64) {
	sh := st.shard(shardID)
	if sh == nil {
		kinesisError(w, http.StatusBadRequest, "ResourceNotFoundException", fmt.Sprintf("Shard %s in stream %s under account %s does not exist", shardID, st.name, s.cfg.AccountID))
		return
	}
	var pos int
	switch typ {
	case "TRIM_HORIZON":
		pos = sh.first
	case "LATEST":
		pos = sh.end()
	case "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER":
		n, ok := parseSeq(seq)
		if !ok {
			kinesisError(w, http.StatusBadRequest, "InvalidArgumentException", "StartingSequenceNumber "+seq+" used in GetShardIterator on shard "+shardID+" in stream "+st.name+" under account "+s.cfg.AccountID+" is invalid.")
			return
		}
		i := sort.Search(len(sh.records), func(i int) bool { return sh.records[i].n >= n })
		pos = sh.first + i
		if typ == "AFTER_SEQUENCE_NUMBER" && i < len(sh.records) && sh.records[i].n == n {
			pos++
		}
	case "AT_TIMESTAMP":
		if ts == nil {
			kinesisError(w, http.StatusBadRequest, "InvalidArgumentException", "Timestamp is required for AT_TIMESTAMP")
			return
		}
		at := time.UnixMilli(int64(*ts * 1000))
		pos = sh.first + sort.Search(len(sh.records), func(i int) bool { return !sh.records[i].at.Before(at) })
	default:
		kinesisError(w, http.StatusBadRequest, "InvalidArgumentException", "ShardIteratorType "+typ+" is not valid")
		return
	}
	it := iterator{Shard: sh.id, Pos: pos, Issued: s.cfg.Now().UnixMilli(), Stream: st.name}
	writeJSON(w, "application/x-amz-json-1.1", map[string]any{"ShardIterator": it.String()})
}

func (s *Server) getRecords(w http.ResponseWriter, st *stream, token string, limit int) {
	it, ok := parseIterator(token)
	sh := st.shard(it.Shard)
	if !ok || sh == nil || it.Stream != st.name {
		kinesisError(w, http.StatusBadRequest, "InvalidArgumentException", "Invalid ShardIterator.")
		return
	}
	now := s.cfg.Now()
	if issued := time.UnixMilli(it.Issued); now.Sub(issued) > s.cfg.IteratorTTL {
		kinesisError(w, http.StatusBadRequest, "ExpiredIteratorException", fmt.Sprintf("Iterator expired. The iterator was created at time %s while right now it is %s which is further in the future than the tolerated delay of %d milliseconds.",
			issued.UTC().Format(time.RFC1123), now.UTC().Format(time.RFC1123), s.cfg.IteratorTTL.Milliseconds()))
		return
	}
	s.mu.Unlock()
	allowed := s.allow("shard:" + sh.id)
	s.mu.Lock()
	if !allowed {
		s.throttled.Add(1)
		kinesisError(w, http.StatusBadRequest, "ProvisionedThroughputExceededException", fmt.Sprintf("Rate exceeded for shard %s in stream %s under account %s.", sh.id, st.name, s.cfg.AccountID))
		return
	}
	if limit <= 0 || limit > 10000 {
		limit = 10000
	}
	pos := max(it.Pos, sh.first)
	end := min(pos+limit, sh.end())
	out := []map[string]any{}
	for _, rec := range sh.records[pos-sh.first : end-sh.first] {
		out = append(out, map[string]any{"SequenceNumber": seqOf(rec.n), "ApproximateArrivalTimestamp": epoch(rec.at),
			"Data": rec.data, "PartitionKey": rec.key})
	}
	behind := 0
	if end < sh.end() {
		behind = int(now.Sub(sh.records[end-sh.first].at).Milliseconds())
	}
	resp := map[string]any{"Records": out, "MillisBehindLatest": behind}
	if sh.closed && end == sh.end() {
		children := []map[string]any{}
		for _, c := range st.shards {
			if c.parent == sh.id || c.adjacent == sh.id {
				parents := []string{c.parent}
				if c.adjacent != "" {
					parents = append(parents, c.adjacent)
				}
				children = append(children, map[string]any{"ShardId": c.id, "ParentShards": parents,
					"HashKeyRange": map[string]string{"StartingHashKey": c.lo.String(), "EndingHashKey": c.hi.String()}})
			}
		}
		resp["ChildShards"] = children
	} else {
		resp["NextShardIterator"] = iterator{Shard: sh.id, Pos: end, Issued: now.UnixMilli(), Stream: st.name}.String()
	}
	writeJSON(w, "application/x-amz-json-1.1", resp)
}

// buffered holds an answer until flush.
type buffered struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (b *buffered) WriteHeader(status int)      { b.status = status }
func (b *buffered) Write(p []byte) (int, error) { return b.body.Write(p) }

func (b *buffered) flush() {
	b.ResponseWriter.WriteHeader(b.status)
	_, _ = b.ResponseWriter.Write(b.body.Bytes())
}
