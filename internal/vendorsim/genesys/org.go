package genesys

import (
	"fmt"
	"strings"
	"time"

	"github.com/omnipresence/omnipresence/internal/vendorsim/demoorg"
)

// The ten primary presence definitions share their ids across Genesys orgs.
const (
	AvailableID = "6a3af858-942f-489d-9700-5f9bcdcdae9b"
	BusyID      = "31fe3bac-dea6-44b7-bed7-47f91660a1a0"
	AwayID      = "5e5c5c66-ea97-4e7f-ac41-6424784829f2"
	OfflineID   = "ccf3c10a-aa2c-4845-8e8d-f59fa48c58e5"
	OnQueueID   = "e08eaf1b-ee47-4fa9-a231-1200e284798f"
	IdleID      = "7ffa01cd-7866-4ad7-8faa-31e11b42f51f"
	MeetingID   = "bbdff279-7ae1-48ea-bade-7831d7234c64"
	MealID      = "3fd96123-badb-4f69-bc03-1b1ccc6d8014"
	TrainingID  = "d2390a99-8546-bad9-8f0a-219548e8aeb0"
	BreakID     = "227b37e2-f1d0-4dd0-8f50-badd7cf6d158"
)

// systemPresences are the REST spellings, in the order Genesys lists them.
var systemPresences = []string{"Available", "Away", "Busy", "Offline", "Idle", "On Queue", "Meal", "Training", "Meeting", "Break"}

var primaryIDs = map[string]string{
	"Available": AvailableID, "Busy": BusyID, "Away": AwayID, "Offline": OfflineID, "On Queue": OnQueueID,
	"Idle": IdleID, "Meeting": MeetingID, "Meal": MealID, "Training": TrainingID, "Break": BreakID,
}

// secondaryParents are the system presences an org may define secondary presences under.
var secondaryParents = map[string]bool{"Available": true, "Away": true, "Break": true, "Busy": true, "Meal": true, "Meeting": true, "Training": true}

// definition is one presence definition of the org.
type definition struct {
	ID             string
	Label          string
	SystemPresence string // REST spelling ("On Queue")
	Primary        bool
	Deactivated    bool
}

// user is one Genesys user with their presence and routing status.
type user struct {
	ID       string
	Name     string
	Email    string
	Division string

	presenceID       string
	presenceMessage  string
	presenceModified time.Time
	// offQueueID is the presence restored when the user goes off queue.
	offQueueID string

	routing      string
	routingStart time.Time
	// calls are the user's connected conversations.
	calls map[string]*conversation
}

// conversation is one call of one user.
type conversation struct {
	ID            string
	UserID        string
	ParticipantID string
	CustomerID    string
	QueueID       string
	Direction     string // "inbound" or "outbound"
	Start         time.Time
	End           time.Time
	Ended         bool
}

// Seed is the JSON form of an org a --seed file holds.
type Seed struct {
	// Definitions are secondary (or replacement primary) presence definitions; the ten primary
	// definitions are always present.
	Definitions []SeedDefinition `json:"definitions"`
	Users       []SeedUser       `json:"users"`
}

// SeedDefinition is one presence definition of a seed.
type SeedDefinition struct {
	ID             string `json:"id"`
	Label          string `json:"label"`
	SystemPresence string `json:"systemPresence"`
}

// SeedUser is one user of a seed; Presence is a definition label or id (Offline by default).
type SeedUser struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Email    string `json:"email"`
	Presence string `json:"presence,omitempty"`
}

// DemoSeed is the built-in demo org: the shared demo roster, the primary definitions and a few
// secondary ones.
func DemoSeed() Seed {
	s := Seed{Definitions: []SeedDefinition{
		{ID: "a1f0c8e2-5b7d-4c11-9e0a-000000000001", Label: "Coffee Break", SystemPresence: "Break"},
		{ID: "a1f0c8e2-5b7d-4c11-9e0a-000000000002", Label: "Coaching", SystemPresence: "Training"},
		{ID: "a1f0c8e2-5b7d-4c11-9e0a-000000000003", Label: "Team Huddle", SystemPresence: "Meeting"},
		{ID: "a1f0c8e2-5b7d-4c11-9e0a-000000000004", Label: "Back Office", SystemPresence: "Busy"},
		{ID: "a1f0c8e2-5b7d-4c11-9e0a-000000000005", Label: "Away From Keyboard", SystemPresence: "Away"},
	}}
	for _, p := range demoorg.People() {
		presence := "Available"
		if p.N > 40 {
			presence = "Offline"
		}
		s.Users = append(s.Users, SeedUser{ID: DemoUserID(p.N), Name: p.Name(), Email: p.Email, Presence: presence})
	}
	return s
}

// DemoUserID is the Genesys user id of demo agent n.
func DemoUserID(n int) string {
	return fmt.Sprintf("9d1c3e2a-%04x-4b5e-8f00-%012x", n, n)
}

// org is the simulated organization's state.
type org struct {
	defs    []*definition
	defByID map[string]*definition
	users   []*user
	byID    map[string]*user
	byEmail map[string]*user
	convs   map[string]*conversation
}

func newOrg(s Seed, now time.Time) (*org, error) {
	o := &org{defByID: map[string]*definition{}, byID: map[string]*user{}, byEmail: map[string]*user{}, convs: map[string]*conversation{}}
	for _, sp := range systemPresences {
		d := &definition{ID: primaryIDs[sp], Label: sp, SystemPresence: sp, Primary: true}
		o.defs = append(o.defs, d)
		o.defByID[d.ID] = d
	}
	for i, sd := range s.Definitions {
		if sd.ID == "" || sd.Label == "" {
			return nil, fmt.Errorf("definition %d: id and label are required", i+1)
		}
		sp := restSpelling(sd.SystemPresence)
		if !secondaryParents[sp] {
			return nil, fmt.Errorf("definition %q: secondary presences exist only under Available, Away, Break, Busy, Meal, Meeting, Training (got %q)", sd.Label, sd.SystemPresence)
		}
		if _, dup := o.defByID[sd.ID]; dup {
			return nil, fmt.Errorf("definition %q: duplicate id %s", sd.Label, sd.ID)
		}
		d := &definition{ID: sd.ID, Label: sd.Label, SystemPresence: sp}
		o.defs = append(o.defs, d)
		o.defByID[d.ID] = d
	}
	for i, su := range s.Users {
		if su.ID == "" || su.Email == "" {
			return nil, fmt.Errorf("user %d: id and email are required", i+1)
		}
		email := strings.ToLower(su.Email)
		if o.byID[su.ID] != nil || o.byEmail[email] != nil {
			return nil, fmt.Errorf("user %s: duplicate id or email", su.Email)
		}
		d := o.defByID[OfflineID]
		if su.Presence != "" {
			if d = o.lookupDef(su.Presence); d == nil {
				return nil, fmt.Errorf("user %s: unknown presence %q", su.Email, su.Presence)
			}
		}
		u := &user{ID: su.ID, Name: su.Name, Email: su.Email, Division: homeDivision, presenceID: d.ID,
			presenceModified: now, offQueueID: AvailableID, routing: "OFF_QUEUE", routingStart: now, calls: map[string]*conversation{}}
		if d.SystemPresence == "On Queue" {
			u.routing = "IDLE"
		} else {
			u.offQueueID = d.ID
		}
		o.users = append(o.users, u)
		o.byID[u.ID] = u
		o.byEmail[email] = u
	}
	return o, nil
}

// homeDivision is the id of the org's only division.
const homeDivision = "b5d9f0c4-2a7e-4d3b-9c1f-5e8a7d6c4b3a"

// lookupDef finds a definition by id or (case-insensitive) label.
func (o *org) lookupDef(idOrLabel string) *definition {
	if d := o.defByID[idOrLabel]; d != nil {
		return d
	}
	for _, d := range o.defs {
		if strings.EqualFold(d.Label, idOrLabel) {
			return d
		}
	}
	return nil
}

// lookupUser finds a user by id or email.
func (o *org) lookupUser(idOrEmail string) *user {
	if u := o.byID[idOrEmail]; u != nil {
		return u
	}
	return o.byEmail[strings.ToLower(idOrEmail)]
}

// restSpelling turns any spelling of a system presence into the REST one ("On Queue").
func restSpelling(s string) string {
	k := strings.ToUpper(strings.NewReplacer(" ", "", "_", "").Replace(s))
	for _, sp := range systemPresences {
		if strings.ToUpper(strings.ReplaceAll(sp, " ", "")) == k {
			return sp
		}
	}
	return s
}

// modelSpelling is the new definitions model's spelling ("OnQueue").
func modelSpelling(sp string) string { return strings.ReplaceAll(sp, " ", "") }

// eventSpelling is the notification payloads' spelling ("ON_QUEUE").
func eventSpelling(sp string) string { return strings.ToUpper(strings.ReplaceAll(sp, " ", "_")) }
