package cxone

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/omnipresence/omnipresence/internal/vendorsim/demoorg"
)

// The ACD states of CXone (CurrentState, agentStateName).
const (
	LoggedOut       = "LoggedOut"
	Available       = "Available"
	Unavailable     = "Unavailable"
	InboundContact  = "InboundContact"
	OutboundContact = "OutboundContact"
)

// Seed is the JSON form of a tenant a --seed file holds.
type Seed struct {
	TenantID   string     `json:"tenant_id"`
	BusNo      int        `json:"bus_no"`
	Codes      []SeedCode `json:"unavailable_codes"`
	Teams      []SeedTeam `json:"teams"`
	Agents     []SeedUser `json:"agents"`
	Integrator SeedUser   `json:"integration_user"`
}

// SeedCode is one unavailable code of the tenant.
type SeedCode struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
	Acw  bool   `json:"acw,omitempty"`
}

// SeedTeam is one team with the names of the unavailable codes it offers.
type SeedTeam struct {
	ID    int      `json:"id"`
	Name  string   `json:"name"`
	Codes []string `json:"codes"`
}

// SeedUser is one agent (or the access key's integration user).
type SeedUser struct {
	ID        int    `json:"id"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
	Email     string `json:"email"`
	Team      string `json:"team"`
	// State is "LoggedOut" (the default), "Available", or an unavailable code's name.
	State string `json:"state,omitempty"`
}

// DemoTenantID is the demo tenant's id.
const DemoTenantID = "11eb0358-7c4b-4f5e-8a3e-000000000001"

// DemoAgentID is the CXone agent id of demo person n.
func DemoAgentID(n int) int { return 100000 + n }

// The demo's unavailable codes, by id.
const (
	BreakCode    = 11
	LunchCode    = 12
	MeetingCode  = 13
	TrainingCode = 14
	PersonalCode = 15
	CoachingCode = 16
	ACWCode      = 17
)

// DemoSeed is the demo tenant: the demo people in teams voice, chat and blended, all logged
// out. Coaching is offered to the voice and blended teams only.
func DemoSeed() Seed {
	s := Seed{TenantID: DemoTenantID, BusNo: 4600001,
		Codes: []SeedCode{{BreakCode, "Break", false}, {LunchCode, "Lunch", false}, {MeetingCode, "Meeting", false},
			{TrainingCode, "Training", false}, {PersonalCode, "Personal", false}, {CoachingCode, "Coaching", false},
			{ACWCode, "ACW", true}},
		Integrator: SeedUser{ID: 199999, FirstName: "Presence", LastName: "Integration", Email: "integration@" + demoorg.Domain},
	}
	all := []string{"Break", "Lunch", "Meeting", "Training", "Personal", "ACW"}
	for i, t := range demoorg.Teams {
		codes := slices.Clone(all)
		if t != "chat" {
			codes = append(codes, "Coaching")
		}
		s.Teams = append(s.Teams, SeedTeam{ID: 2001 + i, Name: t, Codes: codes})
	}
	for _, p := range demoorg.People() {
		s.Agents = append(s.Agents, SeedUser{ID: DemoAgentID(p.N), FirstName: p.FirstName, LastName: p.LastName,
			Email: p.Email, Team: p.Team})
	}
	return s
}

// code is one unavailable code.
type code struct {
	ID   int
	Name string
	Acw  bool
}

// team is one team.
type team struct {
	ID    int
	UUID  string
	Name  string
	Codes []*code
}

func (t *team) code(name string) *code {
	for _, c := range t.Codes {
		if strings.EqualFold(c.Name, name) {
			return c
		}
	}
	return nil
}

// agent is one CXone user with their ACD state.
type agent struct {
	ID        int
	UserID    string
	FirstName string
	LastName  string
	Email     string
	Team      *team

	State   string
	Out     *code     // the unavailable code while Unavailable (nil: no reason)
	Start   time.Time // StartTimeUTC of the state
	Updated time.Time // lastUpdateTime
	// contact is the contact being handled; before holds the state to return to after it.
	contact       *contact
	before        string
	beforeOut     *code
	session       *agentSession
	stationNumber string
}

// contact is one call.
type contact struct {
	ID       int64
	Agent    *agent
	Outbound bool
	Media    string
	Skill    string
	Start    time.Time
}

// agentSession is the platform session of a logged-in agent; several API sessions (the one that
// started it and any that joined it) receive its events.
type agentSession struct {
	platformID int64
	agent      *agent
	apis       map[string]*apiSession
}

// apiSession is one API session id with its own event queue.
type apiSession struct {
	id      string
	owner   int // the user whose token started or joined it
	starter bool
	sess    *agentSession

	mu     sync.Mutex
	queue  []map[string]any
	wake   chan struct{}
	ended  bool
	seenAt time.Time
}

func newAPISession(id string, owner int, starter bool, s *agentSession) *apiSession {
	return &apiSession{id: id, owner: owner, starter: starter, sess: s, wake: make(chan struct{})}
}

// push queues an event and wakes a waiting get-next-event.
func (a *apiSession) push(ev map[string]any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ended {
		return
	}
	a.queue = append(a.queue, ev)
	close(a.wake)
	a.wake = make(chan struct{})
}

// end marks the session ended and wakes its poller, which answers 409.
func (a *apiSession) end() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.ended {
		a.ended = true
		close(a.wake)
		a.wake = make(chan struct{})
	}
}

// take returns the queued events, whether the session ended, and a channel closed at the next
// event.
func (a *apiSession) take() ([]map[string]any, bool, <-chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	q := a.queue
	a.queue = nil
	return q, a.ended, a.wake
}

// tenant is the simulated tenant's state; Server.mu guards it.
type tenant struct {
	id         string
	busNo      int
	codes      []*code
	teams      []*team
	agents     []*agent
	byID       map[int]*agent
	byEmail    map[string]*agent
	integrator *agent
	sessions   map[string]*apiSession
	contacts   map[int64]*contact
	nextID     int64
	// last is the time of the latest change; every change is dated after it.
	last time.Time
}

func newTenant(s Seed, now time.Time) (*tenant, error) {
	t := &tenant{id: s.TenantID, busNo: s.BusNo, byID: map[int]*agent{}, byEmail: map[string]*agent{},
		sessions: map[string]*apiSession{}, contacts: map[int64]*contact{}, nextID: 5000000, last: now.Truncate(time.Millisecond)}
	if t.id == "" {
		t.id = DemoTenantID
	}
	byName := map[string]*code{}
	for _, c := range s.Codes {
		if c.ID <= 0 || c.Name == "" || byName[strings.ToLower(c.Name)] != nil {
			return nil, fmt.Errorf("seed: unavailable code %+v needs a positive id and a unique name", c)
		}
		cc := &code{ID: c.ID, Name: c.Name, Acw: c.Acw}
		byName[strings.ToLower(c.Name)] = cc
		t.codes = append(t.codes, cc)
	}
	teams := map[string]*team{}
	for _, st := range s.Teams {
		if st.ID <= 0 || st.Name == "" || teams[st.Name] != nil {
			return nil, fmt.Errorf("seed: team %+v needs a positive id and a unique name", st)
		}
		tm := &team{ID: st.ID, UUID: fmt.Sprintf("7c1e5d0a-0000-4000-8000-%012d", st.ID), Name: st.Name}
		for _, n := range st.Codes {
			c := byName[strings.ToLower(n)]
			if c == nil {
				return nil, fmt.Errorf("seed: team %s names unknown unavailable code %q", st.Name, n)
			}
			tm.Codes = append(tm.Codes, c)
		}
		teams[st.Name] = tm
		t.teams = append(t.teams, tm)
	}
	add := func(u SeedUser, tm *team) (*agent, error) {
		if u.ID <= 0 || u.Email == "" || t.byID[u.ID] != nil || t.byEmail[strings.ToLower(u.Email)] != nil {
			return nil, fmt.Errorf("seed: user %+v needs a unique positive id and a unique email", u)
		}
		a := &agent{ID: u.ID, UserID: fmt.Sprintf("0a4f7e2c-0000-4000-9000-%012d", u.ID), FirstName: u.FirstName,
			LastName: u.LastName, Email: u.Email, Team: tm, State: LoggedOut, Start: t.last, Updated: t.last,
			stationNumber: fmt.Sprintf("+1555%07d", u.ID%10000000)}
		t.byID[a.ID] = a
		t.byEmail[strings.ToLower(a.Email)] = a
		return a, nil
	}
	for _, u := range s.Agents {
		tm := teams[u.Team]
		if tm == nil {
			return nil, fmt.Errorf("seed: agent %s names unknown team %q", u.Email, u.Team)
		}
		a, err := add(u, tm)
		if err != nil {
			return nil, err
		}
		t.agents = append(t.agents, a)
	}
	if s.Integrator.ID == 0 {
		return nil, errors.New("seed: integration_user (the access key's user) is required")
	}
	in, err := add(s.Integrator, nil)
	if err != nil {
		return nil, err
	}
	t.integrator = in
	for _, u := range s.Agents {
		if u.State != "" && u.State != LoggedOut {
			a := t.byEmail[strings.ToLower(u.Email)]
			t.login(a, now)
			if err := t.setState(a, u.State, now); err != nil {
				return nil, fmt.Errorf("seed: agent %s: %w", u.Email, err)
			}
		}
	}
	return t, nil
}

// stamp returns the time of a new change of a: now to the millisecond, after the agent's
// earlier changes (so that each of its states has its own start time). last keeps the latest
// time given, which a poll's lastPollTime never precedes.
func (t *tenant) stamp(a *agent, now time.Time) time.Time {
	at := now.UTC().Truncate(time.Millisecond)
	if !at.After(a.Updated) {
		at = a.Updated.Add(time.Millisecond)
	}
	if at.After(t.last) {
		t.last = at
	}
	return at
}

// findUser finds an agent by id or email.
func (t *tenant) findUser(key string) *agent {
	if n, err := strconv.Atoi(key); err == nil {
		return t.byID[n]
	}
	return t.byEmail[strings.ToLower(key)]
}

// login starts the agent's platform session (Unavailable, no reason) unless they have one.
func (t *tenant) login(a *agent, now time.Time) *agentSession {
	if a.session != nil {
		return a.session
	}
	t.nextID++
	a.session = &agentSession{platformID: t.nextID, agent: a, apis: map[string]*apiSession{}}
	t.change(a, Unavailable, nil, now)
	return a.session
}

// logout ends the agent's session and every API session on it.
func (t *tenant) logout(a *agent, now time.Time) {
	s := a.session
	if s == nil {
		return
	}
	if a.contact != nil {
		delete(t.contacts, a.contact.ID)
		a.contact = nil
	}
	t.change(a, LoggedOut, nil, now)
	t.broadcast(a, map[string]any{"Type": "AgentSessionEnd", "AgentId": strconv.Itoa(a.ID), "SessionId": strconv.FormatInt(s.platformID, 10)})
	for id, api := range s.apis {
		api.end()
		delete(t.sessions, id)
	}
	a.session = nil
}

// errState says what refused a state change.
type errState struct {
	status int
	msg    string
}

func (e *errState) Error() string { return e.msg }

// setState sets Available, Unavailable (no reason), an unavailable code by name, or LoggedOut,
// as the agent or the API would. It refuses while the agent is on a contact (409), an ACW code
// outside a contact (409), and a code the agent's team does not offer (400).
func (t *tenant) setState(a *agent, state string, now time.Time) error {
	return t.setStateReason(a, state, "", now)
}

func (t *tenant) setStateReason(a *agent, state, reason string, now time.Time) error {
	if strings.EqualFold(state, LoggedOut) {
		t.logout(a, now)
		return nil
	}
	if a.session == nil {
		return &errState{409, "Agent is not logged in."}
	}
	var out *code
	switch {
	case strings.EqualFold(state, Available):
		state = Available
	case strings.EqualFold(state, Unavailable):
		state = Unavailable
		if reason != "" {
			if out = a.Team.code(reason); out == nil {
				return &errState{400, fmt.Sprintf("Invalid unavailable code %q for team %s.", reason, a.Team.Name)}
			}
		}
	default:
		// An unavailable code's name, as the person picks it in the agent client.
		if out = a.Team.code(state); out == nil {
			return &errState{400, fmt.Sprintf("Invalid state %q.", state)}
		}
		state = Unavailable
	}
	if a.contact != nil {
		return &errState{409, "Agent is handling a contact; the state cannot change until it ends."}
	}
	if out != nil && out.Acw {
		return &errState{409, fmt.Sprintf("Unavailable code %q is an after-call-work code; it can only be set during a contact.", out.Name)}
	}
	t.change(a, state, out, now)
	return nil
}

// change records a new ACD state and sends AgentState to the agent's API sessions.
func (t *tenant) change(a *agent, state string, out *code, now time.Time) {
	at := t.stamp(a, now)
	a.State, a.Out, a.Start, a.Updated = state, out, at, at
	t.broadcast(a, t.agentStateEvent(a))
}

func (t *tenant) broadcast(a *agent, ev map[string]any) {
	if a.session == nil {
		return
	}
	for _, api := range a.session.apis {
		api.push(ev)
	}
}

// agentStateEvent is the AgentState event get-next-event carries.
func (t *tenant) agentStateEvent(a *agent) map[string]any {
	reason := ""
	if a.Out != nil {
		reason = a.Out.Name
	}
	ev := map[string]any{
		"Type": "AgentState", "CurrentState": a.State, "CurrentOutReason": reason,
		"StartTimeUTC": cxTime(a.Start), "IsAcw": "False", "AcwTimeout": "", "NextStates": []any{}, "NextIsAcw": "False",
		"IsOutbound": strconv.FormatBool(a.contact != nil && a.contact.Outbound),
	}
	if a.Out != nil && a.Out.Acw {
		ev["IsAcw"] = "True"
	}
	return ev
}

// startContact puts the agent on a call; the agent must be logged in and not on another.
func (t *tenant) startContact(a *agent, outbound bool, skill string, now time.Time) (*contact, error) {
	if a.session == nil {
		return nil, errors.New("the agent is logged out")
	}
	if a.contact != nil {
		return nil, errors.New("the agent is already on a contact")
	}
	t.nextID++
	c := &contact{ID: t.nextID, Agent: a, Outbound: outbound, Media: "PhoneCall", Skill: skill, Start: now}
	t.contacts[c.ID] = c
	a.before, a.beforeOut = a.State, a.Out
	a.contact = c
	state := InboundContact
	if outbound {
		state = OutboundContact
	}
	t.change(a, state, nil, now)
	t.broadcast(a, map[string]any{"Type": "CallContactEvent", "ContactID": strconv.FormatInt(c.ID, 10),
		"Status": "Active", "Skill": skill, "IsInbound": strconv.FormatBool(!outbound), "StartTimeUTC": cxTime(c.Start)})
	return c, nil
}

// endContact ends a call; the agent returns to the state they had before it.
func (t *tenant) endContact(id int64, now time.Time) error {
	c := t.contacts[id]
	if c == nil {
		return errors.New("no such contact")
	}
	delete(t.contacts, id)
	a := c.Agent
	a.contact = nil
	t.broadcast(a, map[string]any{"Type": "CallContactEvent", "ContactID": strconv.FormatInt(c.ID, 10),
		"Status": "Disconnected", "Skill": c.Skill, "IsInbound": strconv.FormatBool(!c.Outbound)})
	t.change(a, a.before, a.beforeOut, now)
	return nil
}

// cxTime is CXone's timestamp format (UTC, milliseconds).
func cxTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
