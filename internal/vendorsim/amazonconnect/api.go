package amazonconnect

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxBody bounds a request body.
const maxBody = 1 << 20

// decode reads a JSON request body into v; it answers the error itself and returns false.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		awsError(w, r, http.StatusBadRequest, "SerializationException", "The request body could not be read: "+err.Error())
		return false
	}
	return true
}

// page cuts a list by a paging token (an opaque offset) and a page size; it returns the range
// and the next token ("" at the end).
func page(n int, token string, size, def, maxSize int) (from, to int, next string, err error) {
	if size <= 0 {
		size = def
	}
	if size > maxSize {
		return 0, 0, "", fmt.Errorf("1 validation error detected: Value '%d' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to %d", size, maxSize)
	}
	if token != "" {
		b, derr := base64.RawURLEncoding.DecodeString(token)
		v, perr := strconv.Atoi(strings.TrimPrefix(string(b), "offset:"))
		if derr != nil || perr != nil || v < 0 || v > n {
			return 0, 0, "", fmt.Errorf("the next token is not valid")
		}
		from = v
	}
	to = min(from+size, n)
	if to < n {
		next = base64.RawURLEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(to)))
	}
	return from, to, next, nil
}

// writePage answers a List or Search operation with the page of items that token and size
// select (size 0: 100; more than maxSize is refused): resp with each item's row under key, and
// NextToken while more follow.
func writePage[T any](w http.ResponseWriter, resp map[string]any, key string, items []T, token string, size, maxSize int, row func(T) map[string]any) {
	from, to, next, err := page(len(items), token, size, 100, maxSize)
	if err != nil {
		connectError(w, http.StatusBadRequest, "InvalidParameterException", err.Error())
		return
	}
	out := []map[string]any{}
	for _, it := range items[from:to] {
		out = append(out, row(it))
	}
	resp[key] = out
	if next != "" {
		resp["NextToken"] = next
	}
	writeJSON(w, "application/json", resp)
}

func queryInt(r *http.Request, key string) int {
	v, _ := strconv.Atoi(r.URL.Query().Get(key))
	return v
}

// listAgentStatuses is ListAgentStatuses: GET /agent-status/{InstanceId}.
func (s *Server) listAgentStatuses(w http.ResponseWriter, r *http.Request) {
	types := r.URL.Query()["AgentStatusTypes"]
	s.mu.Lock()
	var list []*agentStatus
	for _, a := range s.statuses {
		if len(types) == 0 || slices.Contains(types, a.typ) {
			list = append(list, a)
		}
	}
	s.mu.Unlock()
	writePage(w, map[string]any{}, "AgentStatusSummaryList", list, r.URL.Query().Get("nextToken"), queryInt(r, "maxResults"), 1000,
		func(a *agentStatus) map[string]any {
			return map[string]any{"Id": a.id, "Arn": a.arn, "Name": a.name, "Type": a.typ,
				"LastModifiedTime": epoch(a.modified), "LastModifiedRegion": s.cfg.Region}
		})
}

// describeAgentStatus is DescribeAgentStatus: GET /agent-status/{InstanceId}/{AgentStatusId}.
func (s *Server) describeAgentStatus(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	a := s.status(r.PathValue("status"))
	s.mu.Unlock()
	if a == nil {
		connectError(w, http.StatusNotFound, "ResourceNotFoundException", "AgentStatus not found: "+r.PathValue("status"))
		return
	}
	writeJSON(w, "application/json", map[string]any{"AgentStatus": map[string]any{
		"AgentStatusARN": a.arn, "AgentStatusId": a.id, "Name": a.name, "Description": "", "Type": a.typ,
		"DisplayOrder": a.order, "State": "ENABLED", "Tags": map[string]string{},
		"LastModifiedTime": epoch(a.modified), "LastModifiedRegion": s.cfg.Region,
	}})
}

// status finds an agent status by id or ARN.
func (s *Server) status(ref string) *agentStatus {
	for _, a := range s.statuses {
		if a.id == ref || a.arn == ref {
			return a
		}
	}
	return nil
}

// userByRef finds a user by id or ARN.
func (s *Server) userByRef(ref string) *user {
	for _, u := range s.users {
		if u.id == ref || u.arn == ref {
			return u
		}
	}
	return nil
}

// listUsers is ListUsers: GET /users-summary/{InstanceId}.
func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	users := slices.Clone(s.users)
	s.mu.Unlock()
	writePage(w, map[string]any{}, "UserSummaryList", users, r.URL.Query().Get("nextToken"), queryInt(r, "maxResults"), 1000,
		func(u *user) map[string]any {
			return map[string]any{"Id": u.id, "Arn": u.arn, "Username": u.username,
				"LastModifiedTime": epoch(u.modified), "LastModifiedRegion": s.cfg.Region}
		})
}

// describeUser is DescribeUser: GET /users/{InstanceId}/{UserId}.
func (s *Server) describeUser(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	u := s.userByRef(r.PathValue("user"))
	s.mu.Unlock()
	if u == nil {
		connectError(w, http.StatusNotFound, "ResourceNotFoundException", "User not found: "+r.PathValue("user"))
		return
	}
	writeJSON(w, "application/json", map[string]any{"User": map[string]any{
		"Id": u.id, "Arn": u.arn, "Username": u.username,
		"IdentityInfo":       map[string]any{"FirstName": u.first, "LastName": u.last, "Email": u.email},
		"PhoneConfig":        map[string]any{"PhoneType": "SOFT_PHONE", "AutoAccept": false, "AfterContactWorkTimeLimit": 0},
		"SecurityProfileIds": []string{uuidOf("security-profile", "Agent")}, "RoutingProfileId": basicProfileID,
		"Tags": map[string]string{}, "LastModifiedTime": epoch(u.modified), "LastModifiedRegion": s.cfg.Region,
	}})
}

// searchCriteria is SearchUsers' UserSearchCriteria (string conditions, and/or).
type searchCriteria struct {
	StringCondition *struct {
		FieldName      string
		Value          string
		ComparisonType string
	}
	OrConditions  []searchCriteria
	AndConditions []searchCriteria
}

func (c *searchCriteria) match(u *user) bool {
	if c == nil {
		return true
	}
	if sc := c.StringCondition; sc != nil {
		var field string
		switch strings.ToLower(sc.FieldName) {
		case "username":
			field = u.username
		case "firstname":
			field = u.first
		case "lastname":
			field = u.last
		case "resourceid":
			field = u.id
		default:
			return false
		}
		switch strings.ToUpper(sc.ComparisonType) {
		case "CONTAINS":
			if !strings.Contains(strings.ToLower(field), strings.ToLower(sc.Value)) {
				return false
			}
		case "STARTS_WITH":
			if !strings.HasPrefix(strings.ToLower(field), strings.ToLower(sc.Value)) {
				return false
			}
		default:
			if !strings.EqualFold(field, sc.Value) {
				return false
			}
		}
	}
	for i := range c.AndConditions {
		if !c.AndConditions[i].match(u) {
			return false
		}
	}
	if len(c.OrConditions) > 0 {
		return slices.ContainsFunc(c.OrConditions, func(o searchCriteria) bool { return o.match(u) })
	}
	return true
}

// searchUsers is SearchUsers: POST /search-users.
func (s *Server) searchUsers(w http.ResponseWriter, r *http.Request) {
	var req struct {
		InstanceID     string `json:"InstanceId"`
		MaxResults     int
		NextToken      string
		SearchCriteria *searchCriteria
	}
	if !decode(w, r, &req) {
		return
	}
	if req.InstanceID != s.cfg.InstanceID {
		connectError(w, http.StatusNotFound, "ResourceNotFoundException", "Instance not found: "+req.InstanceID)
		return
	}
	s.mu.Lock()
	var users []*user
	for _, u := range s.users {
		if req.SearchCriteria.match(u) {
			users = append(users, u)
		}
	}
	s.mu.Unlock()
	writePage(w, map[string]any{"ApproximateTotalCount": len(users)}, "Users", users, req.NextToken, req.MaxResults, 100,
		func(u *user) map[string]any {
			return map[string]any{"Id": u.id, "Arn": u.arn, "Username": u.username,
				"IdentityInfo":     map[string]any{"FirstName": u.first, "LastName": u.last},
				"PhoneConfig":      map[string]any{"PhoneType": "SOFT_PHONE", "AutoAccept": false, "AfterContactWorkTimeLimit": 0},
				"RoutingProfileId": basicProfileID, "SecurityProfileIds": []string{uuidOf("security-profile", "Agent")},
				"Tags": map[string]string{}}
		})
}

// putUserStatus is PutUserStatus: PUT /users/{InstanceId}/{UserId}/status {"AgentStatusId"}.
// While the agent has a contact the status becomes their NextStatus.
func (s *Server) putUserStatus(w http.ResponseWriter, r *http.Request) {
	var req struct {
		AgentStatusID string `json:"AgentStatusId"`
	}
	if !decode(w, r, &req) {
		return
	}
	if req.AgentStatusID == "" {
		connectError(w, http.StatusBadRequest, "InvalidRequestException", "AgentStatusId is required")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.userByRef(r.PathValue("user"))
	if u == nil {
		connectError(w, http.StatusNotFound, "ResourceNotFoundException", "User not found: "+r.PathValue("user"))
		return
	}
	a := s.status(req.AgentStatusID)
	if a == nil {
		connectError(w, http.StatusNotFound, "ResourceNotFoundException", "AgentStatus not found: "+req.AgentStatusID)
		return
	}
	s.setStatus(u, a)
	writeJSON(w, "application/json", map[string]any{})
}

// getCurrentUserData is GetCurrentUserData: POST /metrics/userdata/{InstanceId}. It reports
// the agents that are logged in.
func (s *Server) getCurrentUserData(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Filters *struct {
			Agents              []string
			Queues              []string
			RoutingProfiles     []string
			UserHierarchyGroups []string
			ContactFilter       *struct{ ContactStates []string }
		}
		MaxResults int
		NextToken  string
	}
	if !decode(w, r, &req) {
		return
	}
	f := req.Filters
	if f == nil {
		connectError(w, http.StatusBadRequest, "InvalidRequestException", "Filters is required")
		return
	}
	kinds := 0
	for _, l := range [][]string{f.Agents, f.Queues, f.RoutingProfiles, f.UserHierarchyGroups} {
		if len(l) > 0 {
			kinds++
		}
	}
	switch {
	case kinds != 1:
		connectError(w, http.StatusBadRequest, "InvalidRequestException", "Exactly one of Agents, Queues, RoutingProfiles or UserHierarchyGroups must be given in Filters")
		return
	case len(f.Agents) > 100 || len(f.Queues) > 100 || len(f.RoutingProfiles) > 100:
		connectError(w, http.StatusBadRequest, "InvalidParameterException", "A filter takes at most 100 values")
		return
	}
	s.mu.Lock()
	var list []map[string]any
	for _, u := range s.users {
		if !u.loggedIn {
			continue
		}
		if len(f.Agents) > 0 && !slices.Contains(f.Agents, u.id) && !slices.Contains(f.Agents, u.arn) {
			continue
		}
		if len(f.RoutingProfiles) > 0 && !slices.Contains(f.RoutingProfiles, basicProfileID) {
			continue
		}
		if len(f.UserHierarchyGroups) > 0 {
			continue
		}
		if len(f.Queues) > 0 && !slices.ContainsFunc(f.Queues, func(q string) bool { return q == uuidOf("queue", basicQueue) }) {
			continue
		}
		if cf := f.ContactFilter; cf != nil && len(cf.ContactStates) > 0 &&
			!slices.ContainsFunc(u.contacts, func(c *contact) bool { return slices.Contains(cf.ContactStates, c.state) }) {
			continue
		}
		list = append(list, s.userData(u))
	}
	s.mu.Unlock()
	writePage(w, map[string]any{"ApproximateTotalCount": len(list)}, "UserDataList", list, req.NextToken, req.MaxResults, 100,
		func(d map[string]any) map[string]any { return d })
}

// userData is one UserData of GetCurrentUserData.
func (s *Server) userData(u *user) map[string]any {
	busy := 0
	contacts := []map[string]any{}
	for _, c := range u.contacts {
		busy++
		m := map[string]any{"ContactId": c.id, "Channel": c.channel, "InitiationMethod": c.method,
			"AgentContactState": c.state, "StateStartTimestamp": epoch(c.stateStart),
			"Queue": map[string]any{"Id": uuidOf("queue", c.queue), "Arn": s.instanceARN + "/queue/" + uuidOf("queue", c.queue)}}
		if !c.connected.IsZero() {
			m["ConnectedToAgentTimestamp"] = epoch(c.connected)
		}
		contacts = append(contacts, m)
	}
	d := map[string]any{
		"User":           map[string]any{"Id": u.id, "Arn": u.arn},
		"RoutingProfile": map[string]any{"Id": basicProfileID, "Arn": s.instanceARN + "/routing-profile/" + basicProfileID},
		"HierarchyPath":  map[string]any{},
		"Status": map[string]any{"StatusStartTimestamp": epoch(u.statusStart), "StatusArn": u.status.arn,
			"StatusName": u.status.name},
		"AvailableSlotsByChannel": map[string]int{"VOICE": max(0, 1-busy), "CHAT": 0, "TASK": 0},
		"MaxSlotsByChannel":       map[string]int{"VOICE": 1, "CHAT": 0, "TASK": 0},
		"ActiveSlotsByChannel":    map[string]int{"VOICE": busy, "CHAT": 0, "TASK": 0},
		"Contacts":                contacts,
	}
	if u.next != nil {
		d["NextStatus"] = u.next.name
	}
	return d
}

// now is the instance's clock, to the millisecond.
func (s *Server) now() time.Time { return ms(s.cfg.Now()) }

// after returns the instance's time for the next change of u: now, or a millisecond after u's
// last change, so that every change of an agent has its own StartTimestamp.
func (s *Server) after(u *user) time.Time {
	t := s.now()
	if !t.After(u.statusStart) {
		t = u.statusStart.Add(time.Millisecond)
	}
	return t
}

// setStatus applies a status as PutUserStatus or the agent in the CCP does (s.mu held). An
// agent who is logged out is logged in by any status but Offline.
func (s *Server) setStatus(u *user, a *agentStatus) {
	if len(u.contacts) > 0 {
		prev := s.snapshot(u)
		u.next, u.nextEnqueued = a, s.after(u)
		s.publish(u, "STATE_CHANGE", prev)
		return
	}
	if a == u.status && (u.loggedIn || a.typ == "OFFLINE") {
		return
	}
	prev := s.snapshot(u)
	if a != u.status {
		u.status, u.statusStart = a, s.after(u)
	}
	if !u.loggedIn && a.typ != "OFFLINE" {
		// Logged in by the status: LOGIN shows it, and the change follows.
		u.loggedIn = true
		s.publish(u, "LOGIN", nil)
	}
	if prev.AgentStatus.ARN != u.status.arn {
		s.publish(u, "STATE_CHANGE", prev)
	}
}
