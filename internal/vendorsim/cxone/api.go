package cxone

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The numeric agentStateId of each ACD state.
var stateIDs = map[string]int{LoggedOut: 0, Available: 1, Unavailable: 2, InboundContact: 3, OutboundContact: 4,
	"InboundConsult": 5, "OutboundConsult": 6, "Dialer": 7, "LoggedIn": 8}

// serveACD serves the ACD API below /inContactAPI/services/vNN.0/ for user; segs are the
// lower-cased path segments after the version.
func (s *Server) serveACD(w http.ResponseWriter, r *http.Request, user *agent, segs []string) {
	q, err := params(r)
	if err != nil {
		s.apiError(w, http.StatusBadRequest, "Bad Request", err.Error())
		return
	}
	get, post, del := r.Method == http.MethodGet, r.Method == http.MethodPost, r.Method == http.MethodDelete
	n := len(segs)
	switch {
	case get && n == 1 && segs[0] == "agents":
		s.listAgents(w, q, nil)
	case get && n == 2 && segs[0] == "agents" && segs[1] == "states",
		get && n == 2 && segs[0] == "cache" && segs[1] == "agentstate":
		s.agentStates(w, q, 0)
	case get && n == 2 && segs[0] == "agents":
		s.listAgents(w, q, s.agentFromPath(w, segs[1]))
	case get && n == 3 && segs[0] == "agents" && segs[2] == "states":
		if a := s.agentFromPath(w, segs[1]); a != nil {
			s.agentStates(w, q, a.ID)
		}
	case get && n == 3 && segs[0] == "agents" && segs[2] == "agent-settings":
		if a := s.agentFromPath(w, segs[1]); a != nil {
			writeJSON(w, http.StatusOK, map[string]any{"agentId": a.ID, "EnableUIQueue": false, "webRTCType": "",
				"maxConferenceParties": 6, "persistentPanels": false})
		}
	case get && n == 1 && segs[0] == "business-unit":
		writeJSON(w, http.StatusOK, map[string]any{"businessUnits": []any{map[string]any{"businessUnitId": s.t.busNo,
			"businessUnitName": "Demo", "features": []any{}, "maxConferenceParties": 6, "fileExtensions": "",
			"isMultiContactHandling": false, "isUnifiedRoutingEnabled": false, "timeZone": "UTC"}}})
	case post && n == 3 && segs[0] == "agents" && segs[2] == "state":
		s.adminState(w, q, segs[1])
	case get && n == 1 && segs[0] == "teams":
		s.listTeams(w, 0)
	case get && n == 2 && segs[0] == "teams":
		s.listTeams(w, atoi(segs[1]))
	case get && n == 3 && segs[0] == "teams" && segs[2] == "agents":
		s.teamAgents(w, q, atoi(segs[1]))
	case get && n == 3 && segs[0] == "teams" && segs[2] == "unavailable-codes":
		s.teamCodes(w, atoi(segs[1]))
	case get && n == 1 && segs[0] == "unavailable-codes":
		s.tenantCodes(w)
	case post && n == 1 && segs[0] == "agent-sessions":
		s.startSession(w, q, user)
	case post && n == 2 && segs[0] == "agent-sessions" && segs[1] == "join":
		s.joinSession(w, q, user)
	case del && n == 2 && segs[0] == "agent-sessions":
		s.endSession(w, q, user, segs[1])
	case post && n == 3 && segs[0] == "agent-sessions" && segs[2] == "state":
		s.sessionState(w, q, user, segs[1])
	case get && n == 3 && segs[0] == "agent-sessions" && segs[2] == "get-next-event":
		s.nextEvent(w, r, q, user, segs[1])
	case post && n == 3 && segs[0] == "agent-sessions" && segs[2] == "keep-alive":
		if api := s.apiSessionOf(w, user, segs[1]); api != nil {
			w.WriteHeader(http.StatusAccepted)
		}
	default:
		s.apiError(w, http.StatusNotFound, "Not Found", "The requested resource does not exist.")
	}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

func (s *Server) agentFromPath(w http.ResponseWriter, id string) *agent {
	s.mu.Lock()
	a := s.t.byID[atoi(id)]
	s.mu.Unlock()
	if a == nil || a == s.t.integrator {
		s.apiError(w, http.StatusNotFound, "Not Found", "Agent "+id+" was not found.")
		return nil
	}
	return a
}

func agentJSON(a *agent, busNo int) map[string]any {
	return map[string]any{
		"agentId": a.ID, "userId": a.UserID, "userName": a.Email, "firstName": a.FirstName, "lastName": a.LastName,
		"emailAddress": a.Email, "isActive": true, "teamId": a.Team.ID, "teamName": a.Team.Name, "teamUuid": a.Team.UUID,
		"businessUnitId": busNo, "lastUpdated": cxTime(a.Updated),
	}
}

// listAgents is GET /agents (skip, top, searchString) or GET /agents/{id} (one).
func (s *Server) listAgents(w http.ResponseWriter, q map[string][]string, one *agent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var list []map[string]any
	if one != nil {
		list = append(list, agentJSON(one, s.t.busNo))
	} else {
		search := strings.ToLower(first(q, "searchstring"))
		for _, a := range s.t.agents {
			if search == "" || strings.Contains(strings.ToLower(a.Email+" "+a.FirstName+" "+a.LastName), search) {
				list = append(list, agentJSON(a, s.t.busNo))
			}
		}
	}
	total := len(list)
	list = page(list, q)
	writeJSON(w, http.StatusOK, map[string]any{"businessUnitId": s.t.busNo, "lastPollTime": cxTime(s.pollTime()),
		"totalRecords": total, "agents": list})
}

func first(q map[string][]string, k string) string {
	if v := q[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// page applies skip and top.
func page[T any](list []T, q map[string][]string) []T {
	skip, top := atoi(first(q, "skip")), atoi(first(q, "top"))
	if skip > 0 {
		list = list[min(skip, len(list)):]
	}
	if top > 0 && top < len(list) {
		list = list[:top]
	}
	return list
}

// pollTime is the lastPollTime of an answer given now: every change dated up to it is in the
// answer. The caller holds s.mu.
func (s *Server) pollTime() time.Time {
	now := s.cfg.Now().UTC().Truncate(time.Millisecond)
	if s.t.last.After(now) {
		return s.t.last
	}
	return now
}

func (s *Server) stateJSON(a *agent, poll time.Time) map[string]any {
	m := map[string]any{
		"agentId": a.ID, "userId": a.UserID, "userName": a.Email, "firstName": a.FirstName, "lastName": a.LastName,
		"agentStateId": stateIDs[a.State], "agentStateName": a.State, "businessUnitId": s.t.busNo,
		"startDate": cxTime(a.Start), "lastUpdateTime": cxTime(a.Updated), "lastPollTime": cxTime(poll),
		"teamId": a.Team.ID, "teamName": a.Team.Name, "isActive": true, "isACW": false, "isOutbound": false,
		"outStateId": 0, "outStateCode": 0, "outStateDescription": "", "contactId": 0, "mediaName": "", "skillId": 0,
		"skillName": "", "stationId": 0, "stationPhoneNumber": "",
	}
	if a.Out != nil {
		m["outStateId"], m["outStateCode"], m["outStateDescription"], m["isACW"] = a.Out.ID, a.Out.ID, a.Out.Name, a.Out.Acw
	}
	if c := a.contact; c != nil {
		m["contactId"], m["mediaName"], m["skillName"], m["isOutbound"] = c.ID, c.Media, c.Skill, c.Outbound
	}
	if a.session != nil {
		m["stationPhoneNumber"] = a.stationNumber
	}
	return m
}

// agentStates is GET /agents/states (or /agents/{id}/states, /cache/agentstate): the agents
// whose state changed at or after updatedSince, with lastPollTime to pass back next time.
func (s *Server) agentStates(w http.ResponseWriter, q map[string][]string, only int) {
	var since time.Time
	if v := first(q, "updatedsince"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			s.apiError(w, http.StatusBadRequest, "Bad Request", "updatedSince must be an ISO 8601 time.")
			return
		}
		since = t
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	poll := s.pollTime()
	list := []map[string]any{}
	for _, a := range s.t.agents {
		if (only == 0 || a.ID == only) && !a.Updated.Before(since) {
			list = append(list, s.stateJSON(a, poll))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"businessUnitId": s.t.busNo, "lastPollTime": cxTime(poll),
		"totalRecords": len(list), "agentStates": page(list, q)})
}

// adminState is POST /agents/{id}/state {"state","outStateId"} (supervisor or admin, no session).
func (s *Server) adminState(w http.ResponseWriter, q map[string][]string, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.t.byID[atoi(id)]
	if a == nil || a == s.t.integrator {
		s.apiError(w, http.StatusNotFound, "Not Found", "Agent "+id+" was not found.")
		return
	}
	reason := ""
	if out := atoi(first(q, "outstateid")); out > 0 {
		for _, c := range s.t.codes {
			if c.ID == out {
				reason = c.Name
			}
		}
		if reason == "" {
			s.apiError(w, http.StatusBadRequest, "InvalidUnavailableCode", "Unknown outStateId.")
			return
		}
	}
	s.applyState(w, a, first(q, "state"), reason)
}

// applyState sets a state and answers 202, or the refusal. The caller holds s.mu.
func (s *Server) applyState(w http.ResponseWriter, a *agent, state, reason string) {
	if !strings.EqualFold(state, Available) && !strings.EqualFold(state, Unavailable) {
		s.apiError(w, http.StatusBadRequest, "InvalidState", "state must be Available or Unavailable.")
		return
	}
	if err := s.t.setStateReason(a, state, reason, s.cfg.Now()); err != nil {
		e := err.(*errState)
		text := map[int]string{400: "InvalidUnavailableCode", 409: "AgentStateConflict"}[e.status]
		if a.session == nil {
			text = "AgentNotLoggedIn"
		} else if a.contact != nil {
			text = "AgentOnContact"
		}
		s.apiError(w, e.status, text, e.msg)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func teamJSON(t *team, agents int) map[string]any {
	return map[string]any{"teamId": t.ID, "teamName": t.Name, "teamUuid": t.UUID, "isActive": true, "agentCount": agents,
		"description": "", "inViewEnabled": false}
}

// listTeams is GET /teams, or GET /teams/{id} when id > 0.
func (s *Server) listTeams(w http.ResponseWriter, id int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	count := map[*team]int{}
	for _, a := range s.t.agents {
		count[a.Team]++
	}
	list := []map[string]any{}
	for _, t := range s.t.teams {
		if id == 0 || t.ID == id {
			list = append(list, teamJSON(t, count[t]))
		}
	}
	if id != 0 && len(list) == 0 {
		s.apiError(w, http.StatusNotFound, "Not Found", "Team "+strconv.Itoa(id)+" was not found.")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"businessUnitId": s.t.busNo, "totalRecords": len(list), "teams": list})
}

func (s *Server) team(id int) *team {
	for _, t := range s.t.teams {
		if t.ID == id {
			return t
		}
	}
	return nil
}

// withTeam calls f, under the tenant's lock, with the team of that id, or answers 404.
func (s *Server) withTeam(w http.ResponseWriter, id int, f func(t *team)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.team(id)
	if t == nil {
		s.apiError(w, http.StatusNotFound, "Not Found", "Team was not found.")
		return
	}
	f(t)
}

func (s *Server) teamAgents(w http.ResponseWriter, q map[string][]string, id int) {
	s.withTeam(w, id, func(t *team) {
		list := []map[string]any{}
		for _, a := range s.t.agents {
			if a.Team == t {
				list = append(list, agentJSON(a, s.t.busNo))
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"teamId": t.ID, "totalRecords": len(list), "agents": page(list, q)})
	})
}

// codesJSON is CXone's form of unavailable codes.
func codesJSON(cs []*code) []map[string]any {
	out := []map[string]any{}
	for _, c := range cs {
		out = append(out, map[string]any{"outStateId": c.ID, "outStateName": c.Name, "isActive": true, "isAcw": c.Acw,
			"agentTimeoutMins": 0, "isPersonalConnection": false})
	}
	return out
}

// teamCodes is GET /teams/{id}/unavailable-codes.
func (s *Server) teamCodes(w http.ResponseWriter, id int) {
	s.withTeam(w, id, func(t *team) {
		codes := codesJSON(t.Codes)
		// The Agent SDK reads the codes at the top level; other clients read them in resultSet.
		writeJSON(w, http.StatusOK, map[string]any{"teamId": t.ID, "teamName": t.Name, "unavailableCodes": codes,
			"resultSet": map[string]any{"teamId": t.ID, "teamName": t.Name, "teamUuid": t.UUID, "unavailableCodes": codes}})
	})
}

// tenantCodes is GET /unavailable-codes.
func (s *Server) tenantCodes(w http.ResponseWriter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	codes := codesJSON(s.t.codes)
	writeJSON(w, http.StatusOK, map[string]any{"businessUnitId": s.t.busNo, "totalRecords": len(codes), "unavailableCodes": codes})
}

// startSession is POST /agent-sessions: the token's user (or asAgentId) logs in at a station.
func (s *Server) startSession(w http.ResponseWriter, q map[string][]string, user *agent) {
	if first(q, "stationid") == "" && first(q, "stationphonenumber") == "" {
		s.apiError(w, http.StatusBadRequest, "InvalidStation", "stationId or stationPhoneNumber is required.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := user
	if id := first(q, "asagentid"); id != "" {
		a = s.t.byID[atoi(id)]
	}
	if a == nil || a.Team == nil {
		s.apiError(w, http.StatusBadRequest, "InvalidAgent", "Only an agent can start an agent session.")
		return
	}
	if a.session != nil {
		s.apiError(w, http.StatusConflict, "SessionExists", "The agent already has an active session; join it instead.")
		return
	}
	if p := first(q, "stationphonenumber"); p != "" {
		a.stationNumber = p
	}
	sess := s.t.login(a, s.cfg.Now())
	api := s.addAPI(sess, user, true)
	api.push(map[string]any{"Type": "AgentSessionStart", "BusNo": strconv.Itoa(s.t.busNo), "AgentId": strconv.Itoa(a.ID),
		"SessionId": strconv.FormatInt(sess.platformID, 10), "StationPhoneNumber": a.stationNumber, "StationCallerId": a.stationNumber})
	api.push(s.t.agentStateEvent(a))
	writeJSON(w, http.StatusAccepted, map[string]any{"sessionId": api.id})
}

func (s *Server) addAPI(sess *agentSession, owner *agent, starter bool) *apiSession {
	api := newAPISession(randomHex(16), owner.ID, starter, sess)
	api.seenAt = s.cfg.Now()
	sess.apis[api.id] = api
	s.t.sessions[api.id] = api
	return api
}

// joinSession is POST /agent-sessions/join {"asAgentId"}: another API session on the agent's
// running session (impersonation).
func (s *Server) joinSession(w http.ResponseWriter, q map[string][]string, user *agent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := first(q, "asagentid")
	a := user
	if id != "" {
		a = s.t.byID[atoi(id)]
	}
	if a == nil || a.Team == nil {
		s.apiError(w, http.StatusNotFound, "InvalidAgent", "Agent "+id+" was not found.")
		return
	}
	if a.session == nil {
		s.apiError(w, http.StatusConflict, "AgentNotLoggedIn", "The agent has no active session to join.")
		return
	}
	api := s.addAPI(a.session, user, false)
	api.push(s.t.agentStateEvent(a))
	writeJSON(w, http.StatusAccepted, map[string]any{"sessionId": api.id})
}

// apiSessionOf finds an API session of user, answering 404 (unknown) or 409 (ended) itself.
func (s *Server) apiSessionOf(w http.ResponseWriter, user *agent, id string) *apiSession {
	s.mu.Lock()
	defer s.mu.Unlock()
	api := s.t.sessions[id]
	if api == nil {
		s.apiError(w, http.StatusConflict, "SessionEnded", "The agent session has ended or does not exist.")
		return nil
	}
	if api.owner != user.ID {
		s.apiError(w, http.StatusForbidden, "Forbidden", "The session belongs to another user.")
		return nil
	}
	api.seenAt = s.cfg.Now()
	return api
}

// endSession is DELETE /agent-sessions/{id}: the session that started the agent's session (or
// forceLogoff=true) logs the agent out; a joined one just leaves.
func (s *Server) endSession(w http.ResponseWriter, q map[string][]string, user *agent, id string) {
	api := s.apiSessionOf(w, user, id)
	if api == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if api.starter || strings.EqualFold(first(q, "forcelogoff"), "true") {
		s.t.logout(api.sess.agent, s.cfg.Now())
	} else {
		api.end()
		delete(api.sess.apis, id)
		delete(s.t.sessions, id)
	}
	w.WriteHeader(http.StatusAccepted)
}

// sessionState is POST /agent-sessions/{id}/state {"state","reason"}.
func (s *Server) sessionState(w http.ResponseWriter, q map[string][]string, user *agent, id string) {
	api := s.apiSessionOf(w, user, id)
	if api == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if api.sess.agent.session != api.sess {
		s.apiError(w, http.StatusConflict, "SessionEnded", "The agent session has ended.")
		return
	}
	s.applyState(w, api.sess.agent, first(q, "state"), first(q, "reason"))
}

// nextEvent is GET /agent-sessions/{id}/get-next-event?timeout=N: the queued events, or 304
// when none came within N seconds, or 409 once the session ended.
func (s *Server) nextEvent(w http.ResponseWriter, r *http.Request, q map[string][]string, user *agent, id string) {
	api := s.apiSessionOf(w, user, id)
	if api == nil {
		return
	}
	timeout := time.Duration(max(atoi(first(q, "timeout")), 0)) * time.Second
	timeout = min(timeout, s.cfg.MaxPoll)
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		evs, ended, wake := api.take()
		if len(evs) > 0 {
			writeJSON(w, http.StatusOK, map[string]any{"sessionId": id, "events": evs})
			return
		}
		if ended {
			s.apiError(w, http.StatusConflict, "SessionEnded", "The agent session has ended.")
			return
		}
		select {
		case <-wake:
		case <-deadline.C:
			w.WriteHeader(http.StatusNotModified)
			return
		case <-r.Context().Done():
			return
		}
	}
}

// sortedAgents lists agents by id (for the control endpoint).
func (s *Server) sortedAgents() []*agent {
	list := slices.Clone(s.t.agents)
	slices.SortFunc(list, func(a, b *agent) int { return a.ID - b.ID })
	return list
}
