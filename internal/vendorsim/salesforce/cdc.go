package salesforce

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math/big"
	"sync"
	"time"

	// hamba/avro is used for the Avro binary encoding: it is actively maintained, maps records to
	// Go structs by tag (nullable unions to pointers), and parses the same schema JSON that
	// GetSchema serves, so encoder and served schema cannot drift apart.
	"github.com/hamba/avro/v2"
)

// UserServicePresenceTopic is the Change Data Capture channel of UserServicePresence.
const UserServicePresenceTopic = "/data/UserServicePresenceChangeEvent"

// allChangeEventsTopic carries the change events of every entity selected for CDC.
const allChangeEventsTopic = "/data/ChangeEvents"

// changeEventSchema is the Avro schema Salesforce generates for an entity's change events: the
// ChangeEventHeader record first, then the common fields and the entity's own, each a nullable
// union; date-times are epoch milliseconds. fields is the entity's own fields, JSON-encoded.
func changeEventSchema(entity, fields string) string {
	return `{
  "type": "record", "name": "` + entity + `ChangeEvent", "namespace": "com.sforce.eventbus",
  "fields": [
    {"name": "ChangeEventHeader", "type": {"type": "record", "name": "ChangeEventHeader", "fields": [
      {"name": "entityName", "type": "string"},
      {"name": "recordIds", "type": {"type": "array", "items": "string"}},
      {"name": "changeType", "type": {"type": "enum", "name": "ChangeType", "namespace": "com.sforce.eventbus",
        "symbols": ["CREATE", "UPDATE", "DELETE", "UNDELETE", "GAP_CREATE", "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE", "GAP_OVERFLOW", "SNAPSHOT"]}},
      {"name": "changeOrigin", "type": "string"},
      {"name": "transactionKey", "type": "string"},
      {"name": "sequenceNumber", "type": "int"},
      {"name": "commitTimestamp", "type": "long"},
      {"name": "commitNumber", "type": "long"},
      {"name": "commitUser", "type": "string"},
      {"name": "nulledFields", "type": {"type": "array", "items": "string"}},
      {"name": "diffFields", "type": {"type": "array", "items": "string"}},
      {"name": "changedFields", "type": {"type": "array", "items": "string"}}
    ]}, "doc": "Data:ChangeEventHeader"},
    {"name": "Name", "type": ["null", "string"], "doc": "Data:Text:00N", "default": null},
    {"name": "OwnerId", "type": ["null", "string"], "doc": "Data:EntityId", "default": null},
    {"name": "CreatedDate", "type": ["null", "long"], "doc": "CreatedDate:DateTime", "default": null},
    {"name": "CreatedById", "type": ["null", "string"], "doc": "CreatedBy:EntityId", "default": null},
    {"name": "LastModifiedDate", "type": ["null", "long"], "doc": "LastModifiedDate:DateTime", "default": null},
    {"name": "LastModifiedById", "type": ["null", "string"], "doc": "LastModifiedBy:EntityId", "default": null},
` + fields + `
  ]
}`
}

// uspChangeEventSchema is the Avro schema of UserServicePresenceChangeEvent.
var uspChangeEventSchema = changeEventSchema("UserServicePresence", `    {"name": "UserId", "type": ["null", "string"], "doc": "Data:EntityId", "default": null},
    {"name": "ServicePresenceStatusId", "type": ["null", "string"], "doc": "Data:EntityId", "default": null},
    {"name": "IsCurrentState", "type": ["null", "boolean"], "doc": "Data:Boolean", "default": null},
    {"name": "StatusStartDate", "type": ["null", "long"], "doc": "Data:DateTime", "default": null},
    {"name": "StatusEndDate", "type": ["null", "long"], "doc": "Data:DateTime", "default": null},
    {"name": "StatusDuration", "type": ["null", "int"], "doc": "Data:Int", "default": null},
    {"name": "ConfiguredCapacity", "type": ["null", "int"], "doc": "Data:Int", "default": null},
    {"name": "IsAway", "type": ["null", "boolean"], "doc": "Data:Boolean", "default": null},
    {"name": "AtCapacityDuration", "type": ["null", "int"], "doc": "Data:Int", "default": null},
    {"name": "IdleDuration", "type": ["null", "int"], "doc": "Data:Int", "default": null},
    {"name": "AverageCapacity", "type": ["null", "double"], "doc": "Data:Double", "default": null}`)

var (
	uspSchema   = avro.MustParse(uspChangeEventSchema)
	uspSchemaID = schemaID(uspChangeEventSchema)
)

// schemaID derives a stable schema id from the schema text, in the 22-character URL-safe form
// Salesforce's schema ids have.
func schemaID(schemaJSON string) string {
	sum := md5.Sum([]byte(schemaJSON))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// ChangeEventHeader is the header every change event carries.
type ChangeEventHeader struct {
	EntityName      string   `avro:"entityName"`
	RecordIDs       []string `avro:"recordIds"`
	ChangeType      string   `avro:"changeType"`
	ChangeOrigin    string   `avro:"changeOrigin"`
	TransactionKey  string   `avro:"transactionKey"`
	SequenceNumber  int32    `avro:"sequenceNumber"`
	CommitTimestamp int64    `avro:"commitTimestamp"`
	CommitNumber    int64    `avro:"commitNumber"`
	CommitUser      string   `avro:"commitUser"`
	NulledFields    []string `avro:"nulledFields"`
	DiffFields      []string `avro:"diffFields"`
	ChangedFields   []string `avro:"changedFields"`
}

// UserServicePresenceChangeEvent is the Avro payload of a UserServicePresence change. In an
// UPDATE only the changed fields are set.
type UserServicePresenceChangeEvent struct {
	ChangeEventHeader       ChangeEventHeader `avro:"ChangeEventHeader"`
	Name                    *string           `avro:"Name"`
	OwnerID                 *string           `avro:"OwnerId"`
	CreatedDate             *int64            `avro:"CreatedDate"`
	CreatedByID             *string           `avro:"CreatedById"`
	LastModifiedDate        *int64            `avro:"LastModifiedDate"`
	LastModifiedByID        *string           `avro:"LastModifiedById"`
	UserID                  *string           `avro:"UserId"`
	ServicePresenceStatusID *string           `avro:"ServicePresenceStatusId"`
	IsCurrentState          *bool             `avro:"IsCurrentState"`
	StatusStartDate         *int64            `avro:"StatusStartDate"`
	StatusEndDate           *int64            `avro:"StatusEndDate"`
	StatusDuration          *int32            `avro:"StatusDuration"`
	ConfiguredCapacity      *int32            `avro:"ConfiguredCapacity"`
	IsAway                  *bool             `avro:"IsAway"`
	AtCapacityDuration      *int32            `avro:"AtCapacityDuration"`
	IdleDuration            *int32            `avro:"IdleDuration"`
	AverageCapacity         *float64          `avro:"AverageCapacity"`
}

func (e *UserServicePresenceChangeEvent) header() *ChangeEventHeader { return &e.ChangeEventHeader }

// changePayload is an Avro change event payload.
type changePayload interface {
	header() *ChangeEventHeader
}

// pendingEvent is a change not yet on the bus: its payload and the schema it is encoded with.
type pendingEvent struct {
	entity     string
	payload    changePayload
	schema     avro.Schema
	schemaID   string
	commitUser string
}

// uspEvent builds the change event of a UserServicePresence row: all set fields for CREATE,
// only the named fields for UPDATE (with the changedFields bitmap).
func uspEvent(r record, changeType, tx string, seq int32, at time.Time, changed ...string) pendingEvent {
	ev := UserServicePresenceChangeEvent{ChangeEventHeader: ChangeEventHeader{
		EntityName: "UserServicePresence", RecordIDs: []string{r["Id"].(string)}, ChangeType: changeType,
		TransactionKey: tx, SequenceNumber: seq, CommitTimestamp: at.UnixMilli(),
		NulledFields: []string{}, DiffFields: []string{}, ChangedFields: []string{},
	}}
	include := func(name string) bool {
		if changeType == "CREATE" {
			return r[name] != nil
		}
		for _, c := range changed {
			if c == name {
				return true
			}
		}
		return false
	}
	str := func(name string) *string {
		if !include(name) {
			return nil
		}
		s := r[name].(string)
		return &s
	}
	ms := func(name string) *int64 {
		if !include(name) {
			return nil
		}
		v := r[name].(time.Time).UnixMilli()
		return &v
	}
	i32 := func(name string) *int32 {
		if !include(name) {
			return nil
		}
		v := int32(r[name].(int64))
		return &v
	}
	boolean := func(name string) *bool {
		if !include(name) {
			return nil
		}
		v := r[name].(bool)
		return &v
	}
	ev.Name, ev.OwnerID, ev.CreatedByID, ev.LastModifiedByID = str("Name"), str("OwnerId"), str("CreatedById"), str("LastModifiedById")
	ev.CreatedDate, ev.LastModifiedDate = ms("CreatedDate"), ms("LastModifiedDate")
	ev.UserID, ev.ServicePresenceStatusID = str("UserId"), str("ServicePresenceStatusId")
	ev.IsCurrentState, ev.IsAway = boolean("IsCurrentState"), boolean("IsAway")
	ev.StatusStartDate, ev.StatusEndDate = ms("StatusStartDate"), ms("StatusEndDate")
	ev.StatusDuration, ev.ConfiguredCapacity = i32("StatusDuration"), i32("ConfiguredCapacity")
	ev.AtCapacityDuration, ev.IdleDuration = i32("AtCapacityDuration"), i32("IdleDuration")
	if include("AverageCapacity") {
		v := r["AverageCapacity"].(float64)
		ev.AverageCapacity = &v
	}
	if changeType == "UPDATE" {
		ev.ChangeEventHeader.ChangedFields = []string{fieldBitmap(uspSchema.(*avro.RecordSchema), changed)}
	}
	return pendingEvent{entity: "UserServicePresence", payload: &ev, schema: uspSchema, schemaID: uspSchemaID}
}

// fieldBitmap encodes field names as the hex bitmap CDC uses over the Pub/Sub API: bit i is set
// when the schema's i-th top-level field changed.
func fieldBitmap(s *avro.RecordSchema, names []string) string {
	bits := new(big.Int)
	for i, f := range s.Fields() {
		for _, n := range names {
			if f.Name() == n {
				bits.SetBit(bits, i, 1)
			}
		}
	}
	return fmt.Sprintf("0x%X", bits)
}

// busEvent is one event on the bus.
type busEvent struct {
	replay   uint64
	id       string
	entity   string
	schemaID string
	payload  []byte
	at       time.Time
}

// replayBytes renders a replay id the way it travels: 8 bytes, big-endian.
func replayBytes(n uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b
}

// parseReplay reads a replay id.
func parseReplay(b []byte) (uint64, bool) {
	if len(b) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(b), true
}

// bus is the change event log: append-only, retained for the retention window, with a
// broadcast channel that wakes subscribers when something is appended.
type bus struct {
	mu        sync.Mutex
	now       func() time.Time
	retention time.Duration
	events    []busEvent
	next      uint64
	commit    int64
	wake      chan struct{}
}

func newBus(now func() time.Time, retention time.Duration) *bus {
	return &bus{now: now, retention: retention, next: 1, wake: make(chan struct{})}
}

// append encodes and publishes one transaction's events.
func (b *bus) append(batch []pendingEvent) {
	if len(batch) == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.commit++
	for _, p := range batch {
		h := p.payload.header()
		h.CommitNumber = b.commit
		h.CommitUser = p.commitUser
		data, err := avro.Marshal(p.schema, p.payload)
		if err != nil {
			panic("salesforce sim: encoding a change event: " + err.Error())
		}
		b.events = append(b.events, busEvent{replay: b.next, id: newUUID(), entity: p.entity,
			schemaID: p.schemaID, payload: data, at: time.UnixMilli(h.CommitTimestamp)})
		b.next++
	}
	b.pruneLocked()
	close(b.wake)
	b.wake = make(chan struct{})
}

func (b *bus) pruneLocked() {
	cut := b.now().Add(-b.retention)
	i := 0
	for i < len(b.events) && b.events[i].at.Before(cut) {
		i++
	}
	b.events = b.events[i:]
}

// after returns up to max events after replay id from that match topic, and a channel closed on
// the next append.
func (b *bus) after(from uint64, topic func(entity string) bool, max int) ([]busEvent, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pruneLocked()
	var out []busEvent
	for _, e := range b.events {
		if e.replay <= from || !topic(e.entity) {
			continue
		}
		if len(out) == max {
			break
		}
		out = append(out, e)
	}
	return out, b.wake
}

// start resolves a subscription's starting point to "deliver events after this replay id".
// A custom replay id must be one the bus issued and still retains (or the tip).
func (b *bus) start(preset string, custom []byte) (uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pruneLocked()
	switch preset {
	case "LATEST":
		return b.next - 1, nil
	case "EARLIEST":
		if len(b.events) == 0 {
			return b.next - 1, nil
		}
		return b.events[0].replay - 1, nil
	}
	n, ok := parseReplay(custom)
	if !ok || n >= b.next {
		return 0, fmt.Errorf("the replay id is not valid")
	}
	if len(b.events) > 0 && n < b.events[0].replay-1 {
		return 0, fmt.Errorf("the replay id is older than the retention window")
	}
	if len(b.events) == 0 && n != b.next-1 {
		return 0, fmt.Errorf("the replay id is older than the retention window")
	}
	return n, nil
}
