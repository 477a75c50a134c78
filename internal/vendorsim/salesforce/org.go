package salesforce

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector/salesforce/sfid"
)

// record is one row: field name → string, bool, int64, float64, time.Time or nil.
type record map[string]any

// org is the simulated org's data: its records, the presence state machine and the change
// event log. Every exported operation of Server that changes presence goes through it.
type org struct {
	mu      sync.Mutex
	now     func() time.Time
	id      string
	adminID string
	tables  map[string][]record
	byID    map[string]record
	counter map[string]int
	// current maps a user id to the id of their current UserServicePresence row.
	current map[string]string
	bus     *bus
	capac   int64
	// lastChange is the time of the latest presence change.
	lastChange time.Time
}

// ErrUnknownUser and ErrUnknownStatus are returned by the presence methods for bad input.
var (
	ErrUnknownUser   = errors.New("unknown user")
	ErrUnknownStatus = errors.New("unknown presence status")
)

func newOrg(now func() time.Time, retention time.Duration) *org {
	o := &org{now: now, tables: map[string][]record{}, byID: map[string]record{}, counter: map[string]int{},
		current: map[string]string{}, capac: 100}
	o.id = newID(prefixOrg, 1)
	o.bus = newBus(now, retention)
	return o
}

// insert adds a record of obj with a fresh id and audit fields; the caller holds mu.
func (o *org) insert(obj string, r record) record {
	def := objects[obj]
	o.counter[obj]++
	id := newID(def.Prefix, o.counter[obj])
	now := o.now().UTC().Truncate(time.Millisecond)
	r["Id"] = id
	r["IsDeleted"] = false
	r["CreatedDate"], r["LastModifiedDate"], r["SystemModstamp"] = now, now, now
	if o.adminID != "" {
		r["CreatedById"], r["LastModifiedById"] = o.adminID, o.adminID
	} else {
		r["CreatedById"], r["LastModifiedById"] = id, id
	}
	for _, f := range def.Fields {
		if _, ok := r[f.Name]; !ok {
			r[f.Name] = nil
		}
	}
	o.tables[obj] = append(o.tables[obj], r)
	o.byID[id] = r
	return r
}

// user resolves a user by id (15 or 18 characters), username or email.
func (o *org) user(ref string) (record, error) {
	if id, ok := sfid.Canonical(ref); ok {
		if r, ok := o.byID[id]; ok && strings.HasPrefix(id, prefixUser) {
			return r, nil
		}
	}
	for _, u := range o.tables["User"] {
		if strings.EqualFold(u["Username"].(string), ref) || strings.EqualFold(u["Email"].(string), ref) {
			return u, nil
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownUser, ref)
}

// status resolves a presence status by DeveloperName or id.
func (o *org) status(ref string) (record, error) {
	for _, s := range o.tables["ServicePresenceStatus"] {
		if s["DeveloperName"] == ref {
			return s, nil
		}
	}
	if id, ok := sfid.Canonical(ref); ok {
		if r, ok := o.byID[id]; ok && strings.HasPrefix(id, prefixServicePresenceStat) {
			return r, nil
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownStatus, ref)
}

// hasChannels reports whether a status routes work (Online) rather than being Away/Busy.
func (o *org) hasChannels(statusID string) bool {
	for _, cs := range o.tables["ServiceChannelStatus"] {
		if cs["ServicePresenceStatusId"] == statusID {
			return true
		}
	}
	return false
}

// Offline is the name SetStatus takes to log an agent out, and the name Presence reports for a
// logged-out agent; it is not a ServicePresenceStatus record.
const Offline = "Offline"

// Change is what one presence operation did.
type Change struct {
	UserID string `json:"user_id"`
	// From and To are DeveloperNames, or Offline.
	From   string    `json:"from"`
	To     string    `json:"to"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// setStatus moves a user to a status (DeveloperName or id) or Offline, producing the
// UserServicePresence rows and change events Omni-Channel produces. Choosing the status the user
// already has changes nothing.
func (o *org) setStatus(userRef, statusRef, reason string) (Change, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	u, err := o.user(userRef)
	if err != nil {
		return Change{}, err
	}
	uid := u["Id"].(string)
	var target record
	if statusRef != Offline && statusRef != "0" {
		if target, err = o.status(statusRef); err != nil {
			return Change{}, err
		}
	}
	// Date-times have millisecond precision, as in Salesforce; two changes never share a
	// millisecond, so a period that ends and the next one always line up unambiguously.
	now := o.tick()
	ch := Change{UserID: uid, From: Offline, To: Offline, Reason: reason, At: now}
	curID, loggedIn := o.current[uid]
	if loggedIn {
		ch.From = o.byID[o.byID[curID]["ServicePresenceStatusId"].(string)]["DeveloperName"].(string)
	}
	if target != nil {
		ch.To = target["DeveloperName"].(string)
	}
	if ch.From == ch.To {
		return ch, nil
	}
	tx := newUUID()
	seq := int32(0)
	var batch []pendingEvent
	if loggedIn {
		cur := o.byID[curID]
		start := cur["StatusStartDate"].(time.Time)
		cur["IsCurrentState"] = false
		cur["StatusEndDate"] = now
		cur["StatusDuration"] = int64(now.Sub(start) / time.Second)
		cur["LastModifiedDate"], cur["SystemModstamp"] = now, now
		delete(o.current, uid)
		seq++
		batch = append(batch, uspEvent(cur, "UPDATE", tx, seq, now,
			"IsCurrentState", "StatusEndDate", "StatusDuration", "LastModifiedDate"))
	}
	if target != nil {
		sid := target["Id"].(string)
		n := len(o.tables["UserServicePresence"]) + 1
		row := o.insert("UserServicePresence", record{
			"Name": fmt.Sprintf("USP-%08d", n), "OwnerId": uid, "UserId": uid,
			"ServicePresenceStatusId": sid, "IsCurrentState": true, "StatusStartDate": now,
			"ConfiguredCapacity": o.capac, "IsAway": !o.hasChannels(sid),
			"AtCapacityDuration": int64(0), "IdleDuration": int64(0), "AverageCapacity": float64(0),
		})
		row["CreatedById"], row["LastModifiedById"] = uid, uid
		o.current[uid] = row["Id"].(string)
		seq++
		batch = append(batch, uspEvent(row, "CREATE", tx, seq, now))
	}
	for i := range batch {
		batch[i].commitUser = uid
	}
	o.bus.append(batch)
	return ch, nil
}

// presence returns a user's current DeveloperName or Offline.
func (o *org) presence(userRef string) (string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	u, err := o.user(userRef)
	if err != nil {
		return "", err
	}
	cur, ok := o.current[u["Id"].(string)]
	if !ok {
		return Offline, nil
	}
	return o.byID[o.byID[cur]["ServicePresenceStatusId"].(string)]["DeveloperName"].(string), nil
}

// rows returns obj's rows in insertion order; the caller holds mu.
func (o *org) rows(obj string) []record {
	return o.tables[obj]
}

// statusNames lists the DeveloperNames of the catalog, sorted.
func (o *org) statusNames() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for _, s := range o.tables["ServicePresenceStatus"] {
		out = append(out, s["DeveloperName"].(string))
	}
	sort.Strings(out)
	return out
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
