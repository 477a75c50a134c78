package amazonconnect

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/omnipresence/omnipresence/internal/vendorsim/demoorg"
)

// Seed is what a simulated instance starts with: its agent statuses and users.
type Seed struct {
	// Statuses are the instance's agent statuses; Type is ROUTABLE, CUSTOM or OFFLINE.
	Statuses []SeedStatus `json:"statuses"`
	// Users are the instance's users; a user starts logged out and Offline.
	Users []SeedUser `json:"users"`
}

// SeedStatus is one agent status of a Seed.
type SeedStatus struct {
	ID   string `json:"id,omitempty"`
	Name string `json:"name"`
	Type string `json:"type"`
}

// SeedUser is one user of a Seed. Username defaults to Email.
type SeedUser struct {
	ID        string `json:"id,omitempty"`
	Username  string `json:"username,omitempty"`
	Email     string `json:"email"`
	FirstName string `json:"first_name,omitempty"`
	LastName  string `json:"last_name,omitempty"`
}

// The demo instance's status ids, stable so that tests and docs can name them.
const (
	AvailableID = "6d569ef5-cd79-43ed-bf2f-2229c73a7297"
	OfflineID   = "dec17412-3ffc-4f7f-9aa9-b17ee337a6d8"
	LunchID     = "2385c17f-46f5-443c-926f-c172f1507db5"
	BreakID     = "3a394210-4abe-4b3b-9b4e-47c0f16931d4"
	TrainingID  = "2b901bde-e2f7-41e9-8efb-db2a25ec9d5b"
	OmniBusyID  = "2baa1ace-a707-4326-8f63-410ca0e50701"
	EscalateID  = "2b3f3593-4e8d-4c38-9053-663ec1071cde"
)

// DemoSeed is the demo instance: the statuses of the Amazon Connect CTI example and the demo
// people (demoorg), whose usernames are their emails.
func DemoSeed() Seed {
	s := Seed{Statuses: []SeedStatus{
		{ID: AvailableID, Name: "Available", Type: "ROUTABLE"},
		{ID: OfflineID, Name: "Offline", Type: "OFFLINE"},
		{ID: LunchID, Name: "Lunch", Type: "CUSTOM"},
		{ID: BreakID, Name: "Break", Type: "CUSTOM"},
		{ID: TrainingID, Name: "Training", Type: "CUSTOM"},
		{ID: OmniBusyID, Name: "OmniBusy", Type: "CUSTOM"},
		{ID: EscalateID, Name: "Escalation", Type: "CUSTOM"},
	}}
	for _, p := range demoorg.People() {
		s.Users = append(s.Users, SeedUser{Email: p.Email, FirstName: p.FirstName, LastName: p.LastName})
	}
	return s
}

// uuidOf derives a stable UUID-shaped id from a name.
func uuidOf(kind, name string) string {
	h := sha256.Sum256([]byte(kind + "\x00" + name))
	x := hex.EncodeToString(h[:16])
	return x[0:8] + "-" + x[8:12] + "-4" + x[13:16] + "-8" + x[17:20] + "-" + x[20:32]
}

// agentStatus is one agent status of the instance.
type agentStatus struct {
	id, name, typ, arn string
	modified           time.Time
	order              int
}

// contact is one contact routed to an agent.
type contact struct {
	id, channel, method, queue string
	state                      string
	stateStart, connected      time.Time
	queued                     time.Time
}

// user is one user of the instance with their live agent state.
type user struct {
	id, arn, username, email, first, last string
	modified                              time.Time
	loggedIn                              bool
	status                                *agentStatus
	statusStart                           time.Time
	next                                  *agentStatus
	nextEnqueued                          time.Time
	contacts                              []*contact
	lastEvent                             time.Time
}

// hashKey is the Kinesis hash of a partition key: MD5 as a 128-bit number.
func hashKey(partitionKey string) [16]byte { return md5.Sum([]byte(partitionKey)) }

// ms truncates t to the millisecond, the precision Connect's timestamps carry.
func ms(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

// snapshot is an AgentSnapshot of the agent event stream.
type snapshot struct {
	AgentStatus     snapStatus     `json:"AgentStatus"`
	NextAgentStatus *snapNext      `json:"NextAgentStatus"`
	Configuration   map[string]any `json:"Configuration"`
	Contacts        []snapContact  `json:"Contacts"`
}

type snapStatus struct {
	ARN            string `json:"ARN"`
	Name           string `json:"Name"`
	StartTimestamp string `json:"StartTimestamp"`
	Type           string `json:"Type,omitempty"`
}

type snapNext struct {
	ARN               string `json:"ARN"`
	Name              string `json:"Name"`
	EnqueuedTimestamp string `json:"EnqueuedTimestamp"`
}

type snapContact struct {
	ContactID                 string         `json:"ContactId"`
	InitialContactID          *string        `json:"InitialContactId"`
	Channel                   string         `json:"Channel"`
	InitiationMethod          string         `json:"InitiationMethod"`
	State                     string         `json:"State"`
	StateStartTimestamp       string         `json:"StateStartTimestamp"`
	ConnectedToAgentTimestamp *string        `json:"ConnectedToAgentTimestamp"`
	QueueTimestamp            *string        `json:"QueueTimestamp"`
	Queue                     map[string]any `json:"Queue"`
}

// agentEvent is a record of the agent event stream, as Connect writes it.
type agentEvent struct {
	AWSAccountID          string    `json:"AWSAccountId"`
	AgentARN              string    `json:"AgentARN"`
	CurrentAgentSnapshot  *snapshot `json:"CurrentAgentSnapshot"`
	EventID               string    `json:"EventId"`
	EventTimestamp        string    `json:"EventTimestamp"`
	EventType             string    `json:"EventType"`
	InstanceARN           string    `json:"InstanceARN"`
	PreviousAgentSnapshot *snapshot `json:"PreviousAgentSnapshot"`
	Version               string    `json:"Version"`
}

// iso renders a time as the agent event stream does: ISO 8601 with milliseconds, in UTC.
func iso(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func isoPtr(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := iso(t)
	return &s
}

// snapshot renders the agent's state as the stream's AgentSnapshot.
func (s *Server) snapshot(u *user) *snapshot {
	sn := &snapshot{
		AgentStatus: snapStatus{ARN: u.status.arn, Name: u.status.name, StartTimestamp: iso(u.statusStart), Type: u.status.typ},
		Configuration: map[string]any{
			"Username": u.username, "FirstName": u.first, "LastName": u.last,
			"RoutingProfile": map[string]any{
				"ARN": s.instanceARN + "/routing-profile/" + basicProfileID, "Name": "Basic Routing Profile",
				"Concurrency":          []map[string]any{{"Channel": "VOICE", "AvailableSlots": boolInt(len(u.contacts) == 0), "MaximumSlots": 1}},
				"DefaultOutboundQueue": s.queueRef(basicQueue), "InboundQueues": []any{s.queueRef(basicQueue)},
			},
			"AgentHierarchyGroups": nil,
		},
		Contacts: []snapContact{},
	}
	if u.next != nil {
		sn.NextAgentStatus = &snapNext{ARN: u.next.arn, Name: u.next.name, EnqueuedTimestamp: iso(u.nextEnqueued)}
	}
	for _, c := range u.contacts {
		sn.Contacts = append(sn.Contacts, snapContact{
			ContactID: c.id, Channel: c.channel, InitiationMethod: c.method, State: c.state,
			StateStartTimestamp: iso(c.stateStart), ConnectedToAgentTimestamp: isoPtr(c.connected),
			QueueTimestamp: isoPtr(c.queued), Queue: s.queueRef(c.queue),
		})
	}
	return sn
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

const (
	basicProfileID = "8bd4ad2d-3c33-49a0-b5d3-bc3e4d45a1f5"
	basicQueue     = "BasicQueue"
)

func (s *Server) queueRef(name string) map[string]any {
	if name == "" {
		return nil
	}
	return map[string]any{"ARN": s.instanceARN + "/queue/" + uuidOf("queue", name), "Name": name}
}
