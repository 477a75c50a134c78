package cxone

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/presence"
)

// The ACD states of CXone that are not unavailable codes. Available and Unavailable (without a
// reason) can be set; the others CXone enters on its own.
const (
	stateAvailable   = "Available"
	stateUnavailable = "Unavailable"
	stateLoggedOut   = "LoggedOut"
)

// contactStates are the states of an agent handling a contact.
var contactStates = []string{"InboundContact", "OutboundContact", "InboundConsult", "OutboundConsult", "Dialer", "DialerPending"}

func isContact(state string) bool { return slices.Contains(contactStates, state) }

// acdStates are CXone's ACD states in the order of their agentStateId, which is their catalog
// id ("1" is Available). DialerPending has no documented id: its name is its id.
var acdStates = []string{stateLoggedOut, stateAvailable, stateUnavailable, "InboundContact", "OutboundContact",
	"InboundConsult", "OutboundConsult", "Dialer", "LoggedIn"}

// stateID is the catalog id of an ACD state.
func stateID(name string) string {
	if i := slices.Index(acdStates, name); i >= 0 {
		return strconv.Itoa(i)
	}
	return name
}

// codeID is the catalog id of an unavailable code: its outStateId, unless that would read as
// an ACD state's id.
func codeID(outStateID int) string {
	if outStateID < len(acdStates) {
		return "outstate-" + strconv.Itoa(outStateID)
	}
	return strconv.Itoa(outStateID)
}

type codeJSON struct {
	OutStateID   int    `json:"outStateId"`
	OutStateName string `json:"outStateName"`
	IsActive     bool   `json:"isActive"`
	IsAcw        bool   `json:"isAcw"`
}

type teamJSON struct {
	TeamID   int    `json:"teamId"`
	TeamName string `json:"teamName"`
	IsActive bool   `json:"isActive"`
}

// Catalog is Available, Unavailable (no reason), the active unavailable codes (ids are their
// outStateId; ACD states' ids are their agentStateId: "1" is Available, "2" Unavailable; after-call-work codes cannot be set outside a contact, so they are not settable;
// a code only some teams offer says which in its label) and the ACD states CXone enters on its
// own (LoggedOut, the contact states), which rules may test but never set.
func (c *Connector) Catalog(ctx context.Context) ([]presence.Status, error) {
	var codes struct {
		UnavailableCodes []codeJSON `json:"unavailableCodes"`
	}
	if err := c.read(ctx, "/unavailable-codes?activeOnly=true", &codes); err != nil {
		return nil, err
	}
	teams, err := c.teams(ctx)
	if err != nil {
		return nil, err
	}
	offered := map[int][]string{}
	for _, t := range teams {
		var resp struct {
			ResultSet struct {
				UnavailableCodes []codeJSON `json:"unavailableCodes"`
			} `json:"resultSet"`
		}
		if err := c.read(ctx, fmt.Sprintf("/teams/%d/unavailable-codes", t.TeamID), &resp); err != nil {
			return nil, err
		}
		for _, code := range resp.ResultSet.UnavailableCodes {
			if code.IsActive {
				offered[code.OutStateID] = append(offered[code.OutStateID], t.TeamName)
			}
		}
	}
	out := []presence.Status{
		{ID: stateID(stateAvailable), Name: stateAvailable, Category: presence.CategoryAvailable, Settable: true},
		{ID: stateID(stateUnavailable), Name: stateUnavailable, Category: presence.CategoryAway, Settable: true},
	}
	for _, code := range codes.UnavailableCodes {
		if !code.IsActive {
			continue
		}
		label := code.OutStateName
		switch by := offered[code.OutStateID]; {
		case len(by) == 0:
			label += " (no team)"
		case len(by) < len(teams):
			label += " (teams " + strings.Join(by, ", ") + ")"
		}
		st := presence.Status{ID: codeID(code.OutStateID), Name: code.OutStateName, Label: label,
			Category: presence.CategoryOfName(code.OutStateName), Settable: !code.IsAcw}
		if code.IsAcw {
			st.Category = presence.CategorySystem
			st.Label = code.OutStateName + " (after-call work: only during a contact)"
		}
		out = append(out, st)
	}
	out = append(out, presence.Status{ID: stateID(stateLoggedOut), Name: stateLoggedOut, Category: presence.CategoryOffline})
	for _, s := range append(slices.Clone(contactStates), "LoggedIn") {
		out = append(out, presence.Status{ID: stateID(s), Name: s, Category: presence.CategorySystem})
	}
	c.mu.Lock()
	c.catalog = map[string]presence.Status{}
	for _, s := range out {
		c.catalog[s.ID] = s
	}
	c.mu.Unlock()
	return out, nil
}

func (c *Connector) teams(ctx context.Context) ([]teamJSON, error) {
	var resp struct {
		Teams []teamJSON `json:"teams"`
	}
	if err := c.read(ctx, "/teams?isActive=true&fields=teamId,teamName,isActive", &resp); err != nil {
		return nil, err
	}
	return resp.Teams, nil
}

// Accounts lists the agents with their emails and their team.
func (c *Connector) Accounts(ctx context.Context) ([]presence.Account, error) {
	const pageSize = 1000
	var out []presence.Account
	for skip := 0; ; skip += pageSize {
		var resp struct {
			TotalRecords int `json:"totalRecords"`
			Agents       []struct {
				AgentID      int    `json:"agentId"`
				FirstName    string `json:"firstName"`
				LastName     string `json:"lastName"`
				EmailAddress string `json:"emailAddress"`
				TeamName     string `json:"teamName"`
				IsActive     bool   `json:"isActive"`
			} `json:"agents"`
		}
		if err := c.read(ctx, fmt.Sprintf("/agents?isActive=true&skip=%d&top=%d", skip, pageSize), &resp); err != nil {
			return nil, err
		}
		for _, a := range resp.Agents {
			if a.EmailAddress == "" || !a.IsActive {
				continue
			}
			acct := presence.Account{ID: strconv.Itoa(a.AgentID), Email: a.EmailAddress, Name: strings.TrimSpace(a.FirstName + " " + a.LastName)}
			if a.TeamName != "" {
				acct.Teams = []string{a.TeamName}
			}
			out = append(out, acct)
		}
		if len(resp.Agents) < pageSize || skip+pageSize >= resp.TotalRecords {
			return out, nil
		}
	}
}

// status resolves a catalog id, loading the catalog when needed.
func (c *Connector) status(ctx context.Context, id string) (presence.Status, error) {
	c.mu.Lock()
	cat := c.catalog
	c.mu.Unlock()
	if cat == nil {
		if _, err := c.Catalog(ctx); err != nil {
			return presence.Status{}, &connector.NotAppliedError{Err: err}
		}
		c.mu.Lock()
		cat = c.catalog
		c.mu.Unlock()
	}
	st, ok := cat[id]
	if !ok {
		return presence.Status{}, &connector.PermanentError{Err: fmt.Errorf("cxone: status %q is not in the catalog", id)}
	}
	if !st.Settable {
		return presence.Status{}, &connector.PermanentError{Err: fmt.Errorf("cxone: %q is a CXone ACD state and cannot be set", st.Name)}
	}
	return st, nil
}

// SetStatus sets an agent Available, or Unavailable with a reason, the way CXone lets a third
// party do it: it joins the agent's session as the agent (once; the session id is kept) and
// sets the state on it. An agent with no session (logged out) or on a contact gets a
// *DeferredError. The receipt's Version is the start time CXone gives the new state, which the
// agent-state event of the change carries too.
func (c *Connector) SetStatus(ctx context.Context, account, statusID string) (connector.Receipt, error) {
	st, err := c.status(ctx, statusID)
	if err != nil {
		return connector.Receipt{}, err
	}
	if _, err := strconv.Atoi(account); err != nil {
		return connector.Receipt{}, &connector.PermanentError{Err: fmt.Errorf("cxone: %q is not an agent id", account)}
	}
	body := map[string]string{"state": stateUnavailable}
	switch st.ID {
	case stateID(stateAvailable):
		body["state"] = stateAvailable
	case stateID(stateUnavailable):
	default:
		body["reason"] = st.Name
	}
	for attempt := 0; ; attempt++ {
		sid, err := c.session(ctx, account)
		if err != nil {
			return connector.Receipt{}, err
		}
		err = c.do(ctx, http.MethodPost, "/agent-sessions/"+sid+"/state", body, nil)
		if e, ok := err.(*APIError); ok {
			switch {
			case e.Code == "SessionEnded" && attempt == 0:
				c.forgetSession(account, sid)
				continue
			case e.Code == "AgentOnContact":
				return connector.Receipt{}, &connector.DeferredError{Reason: "on a contact"}
			case e.Code == "AgentNotLoggedIn" || e.Code == "SessionEnded":
				c.forgetSession(account, sid)
				return connector.Receipt{}, &connector.DeferredError{Reason: stateLoggedOut}
			}
			return connector.Receipt{}, permanent(err)
		}
		if err != nil {
			return connector.Receipt{}, err
		}
		return c.receipt(ctx, account, st), nil
	}
}

// receipt reads the state the write made, for its start time. When the agent shows another
// state by then (a person changed it meanwhile), or the read fails, the receipt carries none.
func (c *Connector) receipt(ctx context.Context, account string, st presence.Status) connector.Receipt {
	states, _, err := c.agentStates(ctx, "/agents/"+account+"/states")
	if err != nil || len(states) != 1 || states[0].statusID() != st.ID {
		return connector.Receipt{}
	}
	return connector.Receipt{Version: states[0].StartDate, At: parseTime(states[0].StartDate)}
}

// session returns the API session joined on the agent's session, joining it when none is kept.
func (c *Connector) session(ctx context.Context, account string) (string, error) {
	c.mu.Lock()
	sid := c.sessions[account]
	c.mu.Unlock()
	if sid != "" {
		return sid, nil
	}
	var resp struct {
		SessionID string `json:"sessionId"`
	}
	err := c.do(ctx, http.MethodPost, "/agent-sessions/join", map[string]string{"asAgentId": account}, &resp)
	if e, ok := err.(*APIError); ok {
		if e.Status == http.StatusConflict {
			return "", &connector.DeferredError{Reason: stateLoggedOut}
		}
		return "", permanent(err)
	}
	if err != nil {
		// The state was not sent: the write certainly did not land.
		return "", &connector.NotAppliedError{Err: err}
	}
	c.mu.Lock()
	c.sessions[account] = resp.SessionID
	c.mu.Unlock()
	return resp.SessionID, nil
}

func (c *Connector) forgetSession(account, sid string) {
	c.mu.Lock()
	if c.sessions[account] == sid {
		delete(c.sessions, account)
	}
	c.mu.Unlock()
}

// CurrentStatuses reads what agents show, dated by CXone's start time of their state.
func (c *Connector) CurrentStatuses(ctx context.Context, accounts []string) (map[string]connector.Current, error) {
	states, _, err := c.agentStates(ctx, "/agents/states")
	if err != nil {
		return nil, err
	}
	out := map[string]connector.Current{}
	for _, s := range states {
		id := strconv.Itoa(s.AgentID)
		if len(accounts) > 0 && !slices.Contains(accounts, id) {
			continue
		}
		out[id] = connector.Current{StatusID: s.statusID(), Since: parseTime(s.StartDate), Version: s.StartDate}
	}
	return out, nil
}

// Healthy checks that a token can be had and the API answers.
func (c *Connector) Healthy(ctx context.Context) error {
	_, err := c.teams(ctx)
	return err
}

// Close leaves every joined session (the agents stay logged in) and releases connections.
func (c *Connector) Close() error {
	c.mu.Lock()
	sessions := c.sessions
	c.sessions = map[string]string{}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, sid := range sessions {
		if ctx.Err() != nil {
			break
		}
		_ = c.do(ctx, http.MethodDelete, "/agent-sessions/"+sid, nil, nil)
	}
	c.http.CloseIdleConnections()
	return nil
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}
