package genesys

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxBulkIDs is the documented limit of the bulk presence GET; the simulator applies the same
// limit to the bulk PUT.
const maxBulkIDs = 50

func (s *Server) apiRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /api/v2/presence/definitions", s.listDefinitions)
	m.HandleFunc("GET /api/v2/presence/definitions/{id}", s.getDefinition)
	m.HandleFunc("GET /api/v2/presencedefinitions", s.listLegacyDefinitions)
	m.HandleFunc("GET /api/v2/presencedefinitions/{id}", s.getLegacyDefinition)
	m.HandleFunc("GET /api/v2/systempresences", s.systemPresences)
	m.HandleFunc("GET /api/v2/users", s.listUsers)
	m.HandleFunc("GET /api/v2/users/{id}", s.getUser)
	m.HandleFunc("POST /api/v2/users/search", s.searchUsers)
	m.HandleFunc("GET /api/v2/users/search", s.searchUsersQ64)
	m.HandleFunc("GET /api/v2/users/{id}/presences/{source}", s.getPresence)
	m.HandleFunc("PATCH /api/v2/users/{id}/presences/{source}", s.patchPresence)
	m.HandleFunc("PUT /api/v2/users/presences/bulk", s.bulkPutPresence)
	m.HandleFunc("GET /api/v2/users/{id}/routingstatus", s.getRoutingStatus)
	m.HandleFunc("PUT /api/v2/users/{id}/routingstatus", s.putRoutingStatus)
	m.HandleFunc("GET /api/v2/conversations/{id}", s.getConversation)
	m.HandleFunc("GET /api/v2/conversations/calls/{id}", s.getConversation)
	s.notificationRoutes(m)
	m.HandleFunc("/api/v2/", func(w http.ResponseWriter, r *http.Request) {
		s.apiError(w, http.StatusNotFound, "not.found", "The requested resource was not found.")
	})
}

// bulkSource routes GET /api/v2/users/presences/{sourceId}/bulk (purecloud included) to the bulk
// presence read. ServeMux cannot hold that pattern beside /api/v2/users/{userId}/presences/{sourceId}
// (both match /api/v2/users/presences/presences/bulk), so it is matched here, before the mux.
func (s *Server) bulkSource(api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.Path, "/api/v2/users/presences/")
		if source, bulk := strings.CutSuffix(rest, "/bulk"); ok && bulk && r.Method == http.MethodGet && source != "" && !strings.Contains(source, "/") {
			r.SetPathValue("source", source)
			s.bulkGetPresence(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

func (s *Server) notFound(w http.ResponseWriter, what string) {
	s.apiError(w, http.StatusNotFound, "not.found", what+" not found")
}

func (s *Server) badRequest(w http.ResponseWriter, msg string) {
	s.apiError(w, http.StatusBadRequest, "bad.request", msg)
}

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil {
		//lint:ignore ST1005 Genesys's own message, sent on the wire.
		return fmt.Errorf("The request could not be understood by the server due to malformed syntax: %v", err)
	}
	return nil
}

// --- presence definitions ---------------------------------------------------------------

func (d *definition) newModel() map[string]any {
	typ := "User"
	if d.Primary {
		typ = "System"
	}
	return map[string]any{
		"id": d.ID, "name": d.Label, "type": typ, "languageLabels": map[string]string{"en_US": d.Label},
		"systemPresence": modelSpelling(d.SystemPresence), "divisionId": "*", "deactivated": d.Deactivated,
		"selfUri": "/api/v2/presence/definitions/" + d.ID,
	}
}

func (d *definition) legacyModel() map[string]any {
	return map[string]any{
		"id": d.ID, "languageLabels": map[string]string{"en_US": d.Label}, "systemPresence": d.SystemPresence,
		"deactivated": d.Deactivated, "primary": d.Primary, "selfUri": "/api/v2/presencedefinitions/" + d.ID,
	}
}

func (s *Server) listDefinitions(w http.ResponseWriter, r *http.Request) {
	deactivated := strings.EqualFold(r.URL.Query().Get("deactivated"), "true")
	s.mu.Lock()
	var out []any
	for _, d := range s.org.defs {
		if d.Deactivated == deactivated {
			out = append(out, d.newModel())
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"total": len(out), "entities": nonNil(out), "selfUri": "/api/v2/presence/definitions"})
}

func (s *Server) getDefinition(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	d := s.org.defByID[r.PathValue("id")]
	s.mu.Unlock()
	if d == nil {
		s.notFound(w, "Presence definition")
		return
	}
	writeJSON(w, http.StatusOK, d.newModel())
}

func (s *Server) listLegacyDefinitions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	pageNumber, pageSize, err := paging(q, 25)
	if err != nil {
		s.badRequest(w, err.Error())
		return
	}
	deleted := strings.ToUpper(q.Get("deleted"))
	s.mu.Lock()
	var all []any
	for _, d := range s.org.defs {
		if deleted == "ALL" || d.Deactivated == (deleted == "TRUE") {
			all = append(all, d.legacyModel())
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, page(all, pageNumber, pageSize, "/api/v2/presencedefinitions"))
}

func (s *Server) getLegacyDefinition(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	d := s.org.defByID[r.PathValue("id")]
	s.mu.Unlock()
	if d == nil {
		s.notFound(w, "Presence definition")
		return
	}
	writeJSON(w, http.StatusOK, d.legacyModel())
}

func (s *Server) systemPresences(w http.ResponseWriter, _ *http.Request) {
	var out []any
	for _, sp := range systemPresences {
		id := eventSpelling(sp)
		out = append(out, map[string]string{"id": id, "name": sp, "selfUri": "/api/v2/systempresences/" + id})
	}
	writeJSON(w, http.StatusOK, out)
}

// paging reads pageNumber and pageSize.
func paging(q url.Values, defSize int) (int, int, error) {
	number, size := 1, defSize
	for _, p := range []struct {
		key string
		dst *int
		max int
	}{{"pageNumber", &number, 1 << 20}, {"pageSize", &size, 500}} {
		if v := q.Get(p.key); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > p.max {
				return 0, 0, fmt.Errorf("%s must be a number between 1 and %d", p.key, p.max)
			}
			*p.dst = n
		}
	}
	return number, size, nil
}

// page renders Genesys's paged listing.
func page(all []any, number, size int, base string) map[string]any {
	total := len(all)
	pageCount := (total + size - 1) / size
	lo := min((number-1)*size, total)
	hi := min(lo+size, total)
	uri := func(n int) string { return fmt.Sprintf("%s?pageSize=%d&pageNumber=%d", base, size, n) }
	out := map[string]any{
		"entities": nonNil(all[lo:hi]), "pageSize": size, "pageNumber": number, "total": total, "pageCount": pageCount,
		"firstUri": uri(1), "selfUri": uri(number), "lastUri": uri(max(pageCount, 1)),
	}
	if number < pageCount {
		out["nextUri"] = uri(number + 1)
	}
	if number > 1 {
		out["previousUri"] = uri(number - 1)
	}
	return out
}

func nonNil(v []any) []any {
	if v == nil {
		return []any{}
	}
	return v
}

// --- users ------------------------------------------------------------------------------

func (s *Server) presenceModel(u *user) map[string]any {
	d := s.org.defByID[u.presenceID]
	return map[string]any{
		"id": u.ID, "source": "PURECLOUD", "sourceId": "PURECLOUD", "primary": true,
		"presenceDefinition": map[string]any{"id": d.ID, "systemPresence": d.SystemPresence, "selfUri": "/api/v2/presencedefinitions/" + d.ID},
		"message":            u.presenceMessage, "modifiedDate": isoTime(u.presenceModified),
		"selfUri": "/api/v2/users/" + u.ID + "/presences/PURECLOUD",
	}
}

func routingModel(u *user) map[string]any {
	return map[string]any{"userId": u.ID, "status": u.routing, "startTime": isoTime(u.routingStart)}
}

func (s *Server) userModel(u *user, expand []string) map[string]any {
	m := map[string]any{
		"id": u.ID, "name": u.Name, "email": u.Email, "username": u.Email, "state": "active", "version": 1,
		"division":      map[string]any{"id": u.Division, "name": "Home", "selfUri": "/api/v2/authorization/divisions/" + u.Division},
		"acdAutoAnswer": false, "selfUri": "/api/v2/users/" + u.ID,
	}
	if slices.Contains(expand, "presence") {
		m["presence"] = s.presenceModel(u)
	}
	if slices.Contains(expand, "routingStatus") {
		m["routingStatus"] = routingModel(u)
	}
	return m
}

// listParam reads a list query parameter sent either repeated (id=a&id=b) or comma-separated
// (id=a,b), as the different SDKs do.
func listParam(q url.Values, key string) []string {
	var out []string
	for _, v := range q[key] {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func expandOf(q url.Values) []string { return listParam(q, "expand") }

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	number, size, err := paging(q, 25)
	if err != nil {
		s.badRequest(w, err.Error())
		return
	}
	ids := listParam(q, "id")
	expand := expandOf(q)
	s.mu.Lock()
	var all []any
	for _, u := range s.org.users {
		if len(ids) == 0 || slices.Contains(ids, u.ID) {
			all = append(all, s.userModel(u, expand))
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, page(all, number, size, "/api/v2/users"))
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.org.byID[r.PathValue("id")]
	if u == nil {
		s.notFound(w, "User")
		return
	}
	writeJSON(w, http.StatusOK, s.userModel(u, expandOf(r.URL.Query())))
}

type searchCriteria struct {
	Type   string   `json:"type"`
	Fields []string `json:"fields"`
	Value  string   `json:"value,omitempty"`
	Values []string `json:"values,omitempty"`
}

type searchRequest struct {
	Query      []searchCriteria `json:"query"`
	Expand     []string         `json:"expand,omitempty"`
	PageSize   int              `json:"pageSize"`
	PageNumber int              `json:"pageNumber"`
	SortBy     string           `json:"sortBy,omitempty"`
	SortOrder  string           `json:"sortOrder,omitempty"`
}

// q64URI is the GET form of the search for page n: the request as base64 JSON in q64.
func q64URI(req searchRequest, n int) string {
	req.PageNumber = n
	b, _ := json.Marshal(req)
	return "/api/v2/users/search?q64=" + url.QueryEscape(base64.StdEncoding.EncodeToString(b))
}

func (s *Server) searchUsers(w http.ResponseWriter, r *http.Request) {
	var req searchRequest
	if err := decodeBody(r, &req); err != nil {
		s.badRequest(w, err.Error())
		return
	}
	s.search(w, req)
}

// searchUsersQ64 is GET /api/v2/users/search?q64=…, the page links of a search; expand given
// here is added to the request's own.
func (s *Server) searchUsersQ64(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	raw, err := base64.StdEncoding.DecodeString(q.Get("q64"))
	if err != nil {
		raw, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(q.Get("q64"), "="))
	}
	var req searchRequest
	if err == nil {
		err = json.Unmarshal(raw, &req)
	}
	if q.Get("q64") == "" || err != nil {
		s.badRequest(w, "q64 must be a base64-encoded search request")
		return
	}
	req.Expand = append(req.Expand, expandOf(q)...)
	s.search(w, req)
}

func (s *Server) search(w http.ResponseWriter, req searchRequest) {
	if req.PageSize == 0 {
		req.PageSize = 25
	}
	if req.PageNumber == 0 {
		req.PageNumber = 1
	}
	if req.PageSize < 0 || req.PageSize > 100 || req.PageNumber < 0 {
		s.badRequest(w, "pageSize must be between 1 and 100")
		return
	}
	for _, c := range req.Query {
		if !strings.EqualFold(c.Type, "EXACT") && !strings.EqualFold(c.Type, "CONTAINS") {
			s.badRequest(w, "Unsupported search type "+c.Type)
			return
		}
	}
	s.mu.Lock()
	var results []any
	for _, u := range s.org.users {
		if matchesAll(u, req.Query) {
			results = append(results, s.userModel(u, req.Expand))
		}
	}
	s.mu.Unlock()
	total := len(results)
	pageCount := (total + req.PageSize - 1) / req.PageSize
	lo := min((req.PageNumber-1)*req.PageSize, total)
	hi := min(lo+req.PageSize, total)
	out := map[string]any{
		"total": total, "pageCount": pageCount, "pageSize": req.PageSize, "pageNumber": req.PageNumber,
		"currentPage": q64URI(req, req.PageNumber), "types": []string{"users"}, "results": nonNil(results[lo:hi]),
	}
	if req.PageNumber < pageCount {
		out["nextPage"] = q64URI(req, req.PageNumber+1)
	}
	if req.PageNumber > 1 {
		out["previousPage"] = q64URI(req, req.PageNumber-1)
	}
	writeJSON(w, http.StatusOK, out)
}

func matchesAll(u *user, q []searchCriteria) bool {
	for _, c := range q {
		values := c.Values
		if c.Value != "" {
			values = append(values, c.Value)
		}
		hit := false
		for _, f := range c.Fields {
			var field string
			switch f {
			case "email", "username":
				field = u.Email
			case "name":
				field = u.Name
			case "id":
				field = u.ID
			default:
				continue
			}
			for _, v := range values {
				if strings.EqualFold(c.Type, "EXACT") && strings.EqualFold(field, v) ||
					strings.EqualFold(c.Type, "CONTAINS") && strings.Contains(strings.ToLower(field), strings.ToLower(v)) {
					hit = true
				}
			}
		}
		if !hit {
			return false
		}
	}
	return true
}

// --- presence ---------------------------------------------------------------------------

func validSource(src string) bool { return strings.EqualFold(src, "purecloud") }

func (s *Server) getPresence(w http.ResponseWriter, r *http.Request) {
	if !validSource(r.PathValue("source")) {
		s.notFound(w, "Presence source")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.org.byID[r.PathValue("id")]
	if u == nil {
		s.notFound(w, "User")
		return
	}
	writeJSON(w, http.StatusOK, s.presenceModel(u))
}

// mutablePresence is the PATCH and bulk PUT body.
type mutablePresence struct {
	ID                 string  `json:"id"`
	Primary            *bool   `json:"primary"`
	Message            *string `json:"message"`
	PresenceDefinition *struct {
		ID string `json:"id"`
	} `json:"presenceDefinition"`
}

func (s *Server) patchPresence(w http.ResponseWriter, r *http.Request) {
	if !validSource(r.PathValue("source")) {
		s.notFound(w, "Presence source")
		return
	}
	var body mutablePresence
	if err := decodeBody(r, &body); err != nil {
		s.badRequest(w, err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.org.byID[r.PathValue("id")]
	if u == nil {
		s.notFound(w, "User")
		return
	}
	if status, code, msg := s.applyPresence(u, body); status != 0 {
		s.apiError(w, status, code, msg)
		return
	}
	writeJSON(w, http.StatusOK, s.presenceModel(u))
}

// applyPresence validates and applies one presence change; s.mu is held.
func (s *Server) applyPresence(u *user, body mutablePresence) (int, string, string) {
	if body.PresenceDefinition == nil && body.Message == nil && body.Primary == nil {
		return http.StatusBadRequest, "bad.request", "presenceDefinition, message or primary is required"
	}
	def := s.org.defByID[u.presenceID]
	if body.PresenceDefinition != nil {
		def = s.org.defByID[body.PresenceDefinition.ID]
		if def == nil || def.Deactivated {
			return http.StatusBadRequest, "invalid.value", "Invalid presence definition id " + body.PresenceDefinition.ID
		}
		if def.ID == IdleID {
			return http.StatusBadRequest, "invalid.value", "The Idle presence is set by the system and cannot be set by a request"
		}
	}
	msg := u.presenceMessage
	if body.Message != nil {
		msg = *body.Message
	}
	s.setPresenceLocked(u, def, msg)
	return 0, "", ""
}

func (s *Server) bulkGetPresence(w http.ResponseWriter, r *http.Request) {
	if !validSource(r.PathValue("source")) {
		s.notFound(w, "Presence source")
		return
	}
	ids := listParam(r.URL.Query(), "id")
	if len(ids) == 0 || len(ids) > maxBulkIDs {
		s.badRequest(w, fmt.Sprintf("Between 1 and %d user ids are required", maxBulkIDs))
		return
	}
	s.mu.Lock()
	var out []any
	for _, id := range ids {
		if u := s.org.byID[id]; u != nil {
			m := s.presenceModel(u)
			m["userId"] = u.ID
			out = append(out, m)
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, nonNil(out))
}

func (s *Server) bulkPutPresence(w http.ResponseWriter, r *http.Request) {
	var body []mutablePresence
	if err := decodeBody(r, &body); err != nil {
		s.badRequest(w, err.Error())
		return
	}
	if len(body) == 0 || len(body) > maxBulkIDs {
		s.badRequest(w, fmt.Sprintf("Between 1 and %d presences are required", maxBulkIDs))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Validate everything first: the bulk call applies all or nothing.
	for _, p := range body {
		u := s.org.byID[p.ID]
		if u == nil {
			s.apiError(w, http.StatusBadRequest, "invalid.value", "User not found: "+p.ID)
			return
		}
		if p.PresenceDefinition != nil {
			if d := s.org.defByID[p.PresenceDefinition.ID]; d == nil || d.Deactivated || d.ID == IdleID {
				s.apiError(w, http.StatusBadRequest, "invalid.value", "Invalid presence definition id "+p.PresenceDefinition.ID)
				return
			}
		}
	}
	var out []any
	for _, p := range body {
		u := s.org.byID[p.ID]
		if status, code, msg := s.applyPresence(u, p); status != 0 {
			s.apiError(w, status, code, msg)
			return
		}
		out = append(out, s.presenceModel(u))
	}
	writeJSON(w, http.StatusOK, out)
}

// setPresenceLocked changes u's presence, derives its routing status and publishes the
// notifications; s.mu is held.
func (s *Server) setPresenceLocked(u *user, def *definition, msg string) {
	now := s.cfg.Now()
	wasOnQueue := s.org.defByID[u.presenceID].SystemPresence == "On Queue"
	u.presenceID, u.presenceMessage, u.presenceModified = def.ID, msg, now
	onQueue := def.SystemPresence == "On Queue"
	if !onQueue {
		u.offQueueID = def.ID
	}
	s.publishPresence(u)
	if onQueue != wasOnQueue {
		s.setRoutingLocked(u, s.derivedRouting(u), now)
	} else {
		s.publishActivity(u)
	}
}

// derivedRouting is the routing status u's presence and calls imply.
func (s *Server) derivedRouting(u *user) string {
	if s.org.defByID[u.presenceID].SystemPresence != "On Queue" {
		return "OFF_QUEUE"
	}
	status := "IDLE"
	for _, c := range u.calls {
		if c.QueueID != "" {
			return "INTERACTING"
		}
		status = "COMMUNICATING"
	}
	return status
}

func (s *Server) setRoutingLocked(u *user, status string, now time.Time) {
	if u.routing == status {
		return
	}
	u.routing, u.routingStart = status, now
	s.publishRouting(u)
	s.publishActivity(u)
}

// --- routing status ---------------------------------------------------------------------

func (s *Server) getRoutingStatus(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := r.PathValue("id")
	u := s.org.byID[id]
	if u == nil {
		// Genesys answers OFF_QUEUE for users that do not exist.
		writeJSON(w, http.StatusOK, map[string]any{"userId": id, "status": "OFF_QUEUE"})
		return
	}
	writeJSON(w, http.StatusOK, routingModel(u))
}

func (s *Server) putRoutingStatus(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Status string `json:"status"`
	}
	if err := decodeBody(r, &body); err != nil {
		s.badRequest(w, err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.org.byID[r.PathValue("id")]
	if u == nil {
		s.notFound(w, "User")
		return
	}
	onQueue := s.org.defByID[u.presenceID].SystemPresence == "On Queue"
	switch body.Status {
	case "OFF_QUEUE":
		if onQueue {
			// Going off queue restores the presence the user had before going on queue.
			s.setPresenceLocked(u, s.org.defByID[u.offQueueID], u.presenceMessage)
		}
	case "IDLE":
		if !onQueue {
			s.badRequest(w, "A user who is not On Queue cannot be set to IDLE; set the On Queue presence instead")
			return
		}
		if len(u.calls) == 0 {
			s.setRoutingLocked(u, "IDLE", s.cfg.Now())
		}
	case "INTERACTING", "COMMUNICATING", "NOT_RESPONDING":
		s.badRequest(w, "Routing status "+body.Status+" is set by the system")
		return
	default:
		s.apiError(w, http.StatusBadRequest, "invalid.value", "Invalid routing status "+body.Status)
		return
	}
	writeJSON(w, http.StatusOK, routingModel(u))
}
