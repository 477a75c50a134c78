package salesforce

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/omnipresence/omnipresence/internal/connector/salesforce/sfid"
)

// AgentWorkTopic is the Change Data Capture channel of AgentWork.
const AgentWorkTopic = "/data/AgentWorkChangeEvent"

// The AgentWork statuses the simulator produces.
const (
	WorkAssigned = "Assigned"
	WorkOpened   = "Opened"
	WorkClosed   = "Closed"
)

// ErrNoWork is returned when a user has no work in the state an operation needs, or cannot
// receive work on a channel.
var ErrNoWork = errors.New("no such work")

// awChangeEventSchema is the Avro schema of AgentWorkChangeEvent.
var awChangeEventSchema = changeEventSchema("AgentWork", `    {"name": "UserId", "type": ["null", "string"], "doc": "Data:EntityId", "default": null},
    {"name": "WorkItemId", "type": ["null", "string"], "doc": "Data:EntityId", "default": null},
    {"name": "ServiceChannelId", "type": ["null", "string"], "doc": "Data:EntityId", "default": null},
    {"name": "Status", "type": ["null", "string"], "doc": "Data:Picklist", "default": null},
    {"name": "AssignedDateTime", "type": ["null", "long"], "doc": "Data:DateTime", "default": null},
    {"name": "AcceptDateTime", "type": ["null", "long"], "doc": "Data:DateTime", "default": null},
    {"name": "CloseDateTime", "type": ["null", "long"], "doc": "Data:DateTime", "default": null},
    {"name": "CapacityWeight", "type": ["null", "double"], "doc": "Data:Double", "default": null},
    {"name": "CapacityPercentage", "type": ["null", "double"], "doc": "Data:Percent", "default": null}`)

var (
	awSchema   = avro.MustParse(awChangeEventSchema)
	awSchemaID = schemaID(awChangeEventSchema)
)

// AgentWorkChangeEvent is the Avro payload of an AgentWork change. In an UPDATE only the
// changed fields are set.
type AgentWorkChangeEvent struct {
	ChangeEventHeader  ChangeEventHeader `avro:"ChangeEventHeader"`
	Name               *string           `avro:"Name"`
	OwnerID            *string           `avro:"OwnerId"`
	CreatedDate        *int64            `avro:"CreatedDate"`
	CreatedByID        *string           `avro:"CreatedById"`
	LastModifiedDate   *int64            `avro:"LastModifiedDate"`
	LastModifiedByID   *string           `avro:"LastModifiedById"`
	UserID             *string           `avro:"UserId"`
	WorkItemID         *string           `avro:"WorkItemId"`
	ServiceChannelID   *string           `avro:"ServiceChannelId"`
	Status             *string           `avro:"Status"`
	AssignedDateTime   *int64            `avro:"AssignedDateTime"`
	AcceptDateTime     *int64            `avro:"AcceptDateTime"`
	CloseDateTime      *int64            `avro:"CloseDateTime"`
	CapacityWeight     *float64          `avro:"CapacityWeight"`
	CapacityPercentage *float64          `avro:"CapacityPercentage"`
}

func (e *AgentWorkChangeEvent) header() *ChangeEventHeader { return &e.ChangeEventHeader }

// awEvent builds the change event of an AgentWork row: every set field for CREATE, only the
// named fields (and the changedFields bitmap) for UPDATE.
func awEvent(r record, changeType, tx string, seq int32, at time.Time, changed ...string) pendingEvent {
	ev := AgentWorkChangeEvent{ChangeEventHeader: ChangeEventHeader{
		EntityName: "AgentWork", RecordIDs: []string{r["Id"].(string)}, ChangeType: changeType,
		ChangeOrigin: "com/salesforce/api/soap/62.0;client=OmniChannel", TransactionKey: tx, SequenceNumber: seq,
		CommitTimestamp: at.UnixMilli(), NulledFields: []string{}, DiffFields: []string{}, ChangedFields: []string{},
	}}
	include := func(name string) bool {
		if changeType == "CREATE" {
			return r[name] != nil
		}
		for _, c := range changed {
			if c == name {
				return r[name] != nil
			}
		}
		return false
	}
	str := func(name string) *string {
		if !include(name) {
			return nil
		}
		v := r[name].(string)
		return &v
	}
	ms := func(name string) *int64 {
		if !include(name) {
			return nil
		}
		v := r[name].(time.Time).UnixMilli()
		return &v
	}
	dbl := func(name string) *float64 {
		if !include(name) {
			return nil
		}
		v := r[name].(float64)
		return &v
	}
	ev.Name, ev.OwnerID, ev.CreatedByID, ev.LastModifiedByID = str("Name"), str("OwnerId"), str("CreatedById"), str("LastModifiedById")
	ev.CreatedDate, ev.LastModifiedDate = ms("CreatedDate"), ms("LastModifiedDate")
	ev.UserID, ev.WorkItemID, ev.ServiceChannelID, ev.Status = str("UserId"), str("WorkItemId"), str("ServiceChannelId"), str("Status")
	ev.AssignedDateTime, ev.AcceptDateTime, ev.CloseDateTime = ms("AssignedDateTime"), ms("AcceptDateTime"), ms("CloseDateTime")
	ev.CapacityWeight, ev.CapacityPercentage = dbl("CapacityWeight"), dbl("CapacityPercentage")
	if changeType == "UPDATE" {
		ev.ChangeEventHeader.ChangedFields = []string{fieldBitmap(awSchema.(*avro.RecordSchema), changed)}
	}
	return pendingEvent{entity: "AgentWork", payload: &ev, schema: awSchema, schemaID: awSchemaID}
}

// workItemPrefixes are the key prefixes of the records each kind of channel routes.
var workItemPrefixes = map[string]string{"VoiceCall": "0LQ", "MessagingSession": "0Mw", "Case": "500", "LiveChatTranscript": "570"}

// Work is one AgentWork row as the control surface reports it.
type Work struct {
	ID               string    `json:"id"`
	UserID           string    `json:"user_id"`
	WorkItemID       string    `json:"work_item_id"`
	ServiceChannelID string    `json:"service_channel_id"`
	Channel          string    `json:"channel"`
	Status           string    `json:"status"`
	At               time.Time `json:"at"`
}

// RouteWork assigns a new work item on a channel (a ServiceChannel DeveloperName or id) to a
// user, as Omni-Channel routing does: an AgentWork in Assigned. The user must be logged in
// with a status that includes the channel.
func (s *Server) RouteWork(user, channel string) (Work, error) {
	return s.org.routeWork(user, channel)
}

// AcceptWork accepts the user's oldest Assigned work on the channel, routing a new item first
// when there is none: the AgentWork becomes Opened with its AcceptDateTime.
func (s *Server) AcceptWork(user, channel string) (Work, error) {
	w, err := s.org.transitionWork(user, channel, WorkAssigned, WorkOpened)
	if errors.Is(err, ErrNoWork) {
		if _, err = s.org.routeWork(user, channel); err == nil {
			w, err = s.org.transitionWork(user, channel, WorkAssigned, WorkOpened)
		}
	}
	if err == nil {
		s.log.Info("work accepted", "user", w.UserID, "work", w.ID, "channel", w.Channel)
	}
	return w, err
}

// CloseWork closes the user's oldest Opened work on the channel (Closed, CloseDateTime).
func (s *Server) CloseWork(user, channel string) (Work, error) {
	return s.org.transitionWork(user, channel, WorkOpened, WorkClosed)
}

// channel resolves a ServiceChannel by DeveloperName or id; the caller holds mu.
func (o *org) channel(ref string) (record, error) {
	for _, c := range o.tables["ServiceChannel"] {
		if c["DeveloperName"] == ref {
			return c, nil
		}
	}
	if id, ok := sfid.Canonical(ref); ok {
		if r, ok := o.byID[id]; ok && strings.HasPrefix(id, prefixServiceChannel) {
			return r, nil
		}
	}
	return nil, fmt.Errorf("%w: unknown service channel %q", ErrNoWork, ref)
}

// tick returns the time of the next change: milliseconds, strictly after the last one.
func (o *org) tick() time.Time {
	now := o.now().UTC().Truncate(time.Millisecond)
	if !now.After(o.lastChange) {
		now = o.lastChange.Add(time.Millisecond)
	}
	o.lastChange = now
	return now
}

func (o *org) routeWork(userRef, channelRef string) (Work, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	u, err := o.user(userRef)
	if err != nil {
		return Work{}, err
	}
	ch, err := o.channel(channelRef)
	if err != nil {
		return Work{}, err
	}
	uid, cid := u["Id"].(string), ch["Id"].(string)
	cur, ok := o.current[uid]
	routable := false
	if ok {
		sid := o.byID[cur]["ServicePresenceStatusId"]
		for _, cs := range o.tables["ServiceChannelStatus"] {
			if cs["ServicePresenceStatusId"] == sid && cs["ServiceChannelId"] == cid {
				routable = true
			}
		}
	}
	if !routable {
		return Work{}, fmt.Errorf("%w: %s is not online for %s", ErrNoWork, userRef, ch["DeveloperName"])
	}
	now := o.tick()
	entity, _ := ch["RelatedEntity"].(string)
	prefix, ok := workItemPrefixes[entity]
	if !ok {
		prefix = "0Xx"
	}
	o.counter["workitem"]++
	row := record{"Name": fmt.Sprintf("%08d", len(o.tables["AgentWork"])+1), "OwnerId": uid, "UserId": uid,
		"WorkItemId": newID(prefix, o.counter["workitem"]), "ServiceChannelId": cid, "Status": WorkAssigned,
		"AssignedDateTime": now, "RoutingModel": "MostAvailable", "RoutingType": "QueueBased"}
	// Voice takes the agent's entire capacity; other channels a quarter of it.
	if entity == "VoiceCall" {
		row["CapacityPercentage"] = float64(100)
	} else {
		row["CapacityWeight"] = float64(o.capac) / 4
	}
	row = o.insert("AgentWork", row)
	row["CreatedDate"], row["LastModifiedDate"], row["SystemModstamp"] = now, now, now
	o.bus.append([]pendingEvent{withUser(awEvent(row, "CREATE", newUUID(), 1, now), o.adminID)})
	return o.work(row), nil
}

// transitionWork moves the user's oldest work on the channel from one status to the next,
// stamping the time field of the new status.
func (o *org) transitionWork(userRef, channelRef, from, to string) (Work, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	u, err := o.user(userRef)
	if err != nil {
		return Work{}, err
	}
	ch, err := o.channel(channelRef)
	if err != nil {
		return Work{}, err
	}
	uid, cid := u["Id"].(string), ch["Id"].(string)
	var row record
	for _, w := range o.tables["AgentWork"] {
		if w["UserId"] == uid && w["ServiceChannelId"] == cid && w["Status"] == from {
			row = w
			break
		}
	}
	if row == nil {
		return Work{}, fmt.Errorf("%w: %s has no %s work on %s", ErrNoWork, userRef, from, ch["DeveloperName"])
	}
	now := o.tick()
	stamp := map[string]string{WorkOpened: "AcceptDateTime", WorkClosed: "CloseDateTime"}[to]
	row["Status"], row[stamp] = to, now
	row["LastModifiedDate"], row["SystemModstamp"], row["LastModifiedById"] = now, now, uid
	ev := awEvent(row, "UPDATE", newUUID(), 1, now, "Status", stamp, "LastModifiedDate", "LastModifiedById")
	o.bus.append([]pendingEvent{withUser(ev, uid)})
	return o.work(row), nil
}

func withUser(p pendingEvent, user string) pendingEvent {
	p.commitUser = user
	return p
}

// work renders a row for the control surface; the caller holds mu.
func (o *org) work(r record) Work {
	w := Work{ID: r["Id"].(string), UserID: r["UserId"].(string), WorkItemID: r["WorkItemId"].(string),
		ServiceChannelID: r["ServiceChannelId"].(string), Status: r["Status"].(string)}
	w.Channel, _ = o.byID[w.ServiceChannelID]["DeveloperName"].(string)
	for _, f := range []string{"CloseDateTime", "AcceptDateTime", "AssignedDateTime"} {
		if t, ok := r[f].(time.Time); ok {
			w.At = t
			break
		}
	}
	return w
}
