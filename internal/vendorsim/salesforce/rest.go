package salesforce

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector/salesforce/sfid"
)

// latestVersion is the newest REST API version served; versions lists the ones accepted.
const latestVersion = "62.0"

var versions = []struct{ label, version string }{
	{"Summer '24", "61.0"}, {"Winter '25", "62.0"},
}

// maxCursors bounds the open query cursors (Salesforce keeps a per-user limit too).
const maxCursors = 200

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/services/oauth2/token", s.token)
	mux.HandleFunc("/services/data", s.versionsList)
	mux.HandleFunc("/services/data/", s.data)
	mux.HandleFunc("/id/", s.identity)
	mux.HandleFunc("/_sim/users/", s.control)
	mux.HandleFunc("/_sim/tokens/expire", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "use POST", http.StatusMethodNotAllowed)
			return
		}
		s.ExpireTokens()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.Handle("/_sim/faults", s.faults.ControlHandler())
	// The agent console stands in for the browser UI, not the API: injected API faults skip it.
	outer := http.NewServeMux()
	outer.HandleFunc("/console/", s.console)
	outer.Handle("/", s.faults.Middleware(mux))
	return outer
}

// writeFault renders an injected failure in Salesforce's error envelope.
func writeFault(w http.ResponseWriter, _ *http.Request, status int, _ time.Duration) {
	code := "SERVER_UNAVAILABLE"
	if status == http.StatusTooManyRequests || status == http.StatusForbidden {
		code = "REQUEST_LIMIT_EXCEEDED"
	}
	writeErrors(w, &apiError{Status: status, Code: code, Message: "injected fault"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErrors(w http.ResponseWriter, e *apiError) {
	fields := e.Fields
	if fields == nil {
		fields = []string{}
	}
	writeJSON(w, e.Status, []map[string]any{{"message": e.Message, "errorCode": e.Code, "fields": fields}})
}

func (s *Server) versionsList(w http.ResponseWriter, r *http.Request) {
	var out []map[string]string
	for _, v := range versions {
		out = append(out, map[string]string{"label": v.label, "url": "/services/data/v" + v.version, "version": v.version})
	}
	writeJSON(w, http.StatusOK, out)
}

// authREST checks the bearer token and the daily allocation and sets Sforce-Limit-Info. It
// writes the error and returns false when the call must not proceed.
func (s *Server) authREST(w http.ResponseWriter, r *http.Request) (session, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		tok, ok = strings.CutPrefix(r.Header.Get("Authorization"), "OAuth ")
	}
	ss, valid := s.authorize(strings.TrimSpace(tok))
	if !ok || !valid {
		writeErrors(w, &apiError{Status: http.StatusUnauthorized, Code: "INVALID_SESSION_ID", Message: "Session expired or invalid"})
		return session{}, false
	}
	s.mu.Lock()
	over := s.apiUsed >= s.cfg.DailyAPIRequests
	if !over {
		s.apiUsed++
	}
	used := s.apiUsed
	s.mu.Unlock()
	w.Header().Set("Sforce-Limit-Info", fmt.Sprintf("api-usage=%d/%d", used, s.cfg.DailyAPIRequests))
	if over {
		writeErrors(w, &apiError{Status: http.StatusForbidden, Code: "REQUEST_LIMIT_EXCEEDED", Message: "TotalRequests Limit exceeded."})
		return session{}, false
	}
	return ss, true
}

// data serves everything under /services/data/.
func (s *Server) data(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/services/data/")
	if rest == "" {
		s.versionsList(w, r)
		return
	}
	vpart, tail, _ := strings.Cut(rest, "/")
	version, ok := strings.CutPrefix(vpart, "v")
	if !ok || !knownVersion(version) {
		writeErrors(w, &apiError{Status: http.StatusNotFound, Code: "NOT_FOUND", Message: "The requested resource does not exist"})
		return
	}
	if _, ok := s.authREST(w, r); !ok {
		return
	}
	parts := strings.Split(strings.Trim(tail, "/"), "/")
	if r.Method != http.MethodGet && !(len(parts) >= 2 && parts[0] == "sobjects") {
		writeErrors(w, &apiError{Status: http.StatusMethodNotAllowed, Code: "METHOD_NOT_ALLOWED",
			Message: fmt.Sprintf("HTTP Method '%s' not allowed. Allowed are GET", r.Method)})
		return
	}
	switch {
	case tail == "" || tail == "/":
		base := "/services/data/v" + version
		writeJSON(w, http.StatusOK, map[string]string{"sobjects": base + "/sobjects", "query": base + "/query",
			"queryAll": base + "/queryAll", "limits": base + "/limits"})
	case parts[0] == "limits" && len(parts) == 1:
		s.mu.Lock()
		used := s.apiUsed
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{
			"DailyApiRequests":        map[string]int{"Max": s.cfg.DailyAPIRequests, "Remaining": s.cfg.DailyAPIRequests - used},
			"DailyStreamingApiEvents": map[string]int{"Max": 1000000, "Remaining": 1000000},
		})
	case (parts[0] == "query" || parts[0] == "queryAll") && len(parts) == 1:
		s.runQuery(w, r, version)
	case (parts[0] == "query" || parts[0] == "queryAll") && len(parts) == 2:
		s.nextPage(w, parts[1], version)
	case parts[0] == "sobjects" && len(parts) == 1:
		s.describeGlobal(w, version)
	case parts[0] == "sobjects":
		s.sobject(w, r, version, parts[1:])
	default:
		writeErrors(w, &apiError{Status: http.StatusNotFound, Code: "NOT_FOUND", Message: "The requested resource does not exist"})
	}
}

func knownVersion(v string) bool {
	for _, k := range versions {
		if k.version == v {
			return true
		}
	}
	return false
}

func (s *Server) runQuery(w http.ResponseWriter, r *http.Request, version string) {
	soql := r.URL.Query().Get("q")
	if len(soql) > 100000 {
		writeErrors(w, &apiError{Status: 400, Code: "MALFORMED_QUERY", Message: "Query is too long"})
		return
	}
	q, err := ParseSOQL(soql)
	if err != nil {
		writeErrors(w, &apiError{Status: 400, Code: "MALFORMED_QUERY", Message: err.Error()})
		return
	}
	res, aerr := s.org.query(q, version)
	if aerr != nil {
		writeErrors(w, aerr)
		return
	}
	s.writePage(w, res.total, res.records, version)
}

// writePage writes the first batch and parks the rest behind a nextRecordsUrl.
func (s *Server) writePage(w http.ResponseWriter, total int, recs []*ordered, version string) {
	out := map[string]any{"totalSize": total, "done": true}
	if len(recs) > s.cfg.BatchSize {
		s.mu.Lock()
		s.cursorSeq++
		loc := newID(prefixQueryLocator, s.cursorSeq)
		key := fmt.Sprintf("%s-%d", loc, s.cfg.BatchSize)
		if len(s.cursors) >= maxCursors {
			for k := range s.cursors {
				delete(s.cursors, k)
				break
			}
		}
		s.cursors[key] = recs[s.cfg.BatchSize:]
		s.mu.Unlock()
		recs = recs[:s.cfg.BatchSize]
		out["done"] = false
		out["nextRecordsUrl"] = fmt.Sprintf("/services/data/v%s/query/%s", version, key)
	}
	if recs == nil {
		recs = []*ordered{}
	}
	out["records"] = recs
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) nextPage(w http.ResponseWriter, key, version string) {
	s.mu.Lock()
	rest, ok := s.cursors[key]
	delete(s.cursors, key)
	s.mu.Unlock()
	if !ok {
		writeErrors(w, &apiError{Status: 400, Code: "INVALID_QUERY_LOCATOR", Message: "invalid query locator"})
		return
	}
	loc, offStr, _ := strings.Cut(key, "-")
	off, _ := strconv.Atoi(offStr)
	total := off + len(rest)
	out := map[string]any{"totalSize": total, "done": true}
	if len(rest) > s.cfg.BatchSize {
		next := fmt.Sprintf("%s-%d", loc, off+s.cfg.BatchSize)
		s.mu.Lock()
		s.cursors[next] = rest[s.cfg.BatchSize:]
		s.mu.Unlock()
		rest = rest[:s.cfg.BatchSize]
		out["done"] = false
		out["nextRecordsUrl"] = fmt.Sprintf("/services/data/v%s/query/%s", version, next)
	}
	out["records"] = rest
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) describeGlobal(w http.ResponseWriter, version string) {
	var list []map[string]any
	for _, name := range []string{"AgentWork", "PresenceUserConfig", "ServiceChannel", "ServiceChannelStatus", "ServicePresenceStatus", "User", "UserServicePresence"} {
		o := objects[name]
		list = append(list, map[string]any{"name": o.Name, "label": o.Label, "labelPlural": o.Plural, "keyPrefix": o.Prefix,
			"createable": o.Createable, "updateable": o.Updateable, "queryable": true, "retrieveable": true,
			"urls": map[string]string{"sobject": fmt.Sprintf("/services/data/v%s/sobjects/%s", version, o.Name),
				"describe": fmt.Sprintf("/services/data/v%s/sobjects/%s/describe", version, o.Name)}})
	}
	writeJSON(w, http.StatusOK, map[string]any{"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": list})
}

// sobject serves /sobjects/{type}[/describe | /{id}].
func (s *Server) sobject(w http.ResponseWriter, r *http.Request, version string, parts []string) {
	obj, ok := lookupObject(parts[0])
	if !ok {
		writeErrors(w, &apiError{Status: http.StatusNotFound, Code: "NOT_FOUND", Message: "The requested resource does not exist"})
		return
	}
	switch {
	case len(parts) == 1 && r.Method == http.MethodPost:
		s.refuseWrite(w, obj, "inserted")
	case len(parts) == 2 && (r.Method == http.MethodPatch || r.Method == http.MethodPut):
		s.refuseWrite(w, obj, "updated")
	case r.Method != http.MethodGet:
		writeErrors(w, &apiError{Status: http.StatusMethodNotAllowed, Code: "METHOD_NOT_ALLOWED",
			Message: fmt.Sprintf("HTTP Method '%s' not allowed. Allowed are GET", r.Method)})
	case len(parts) == 1:
		writeJSON(w, http.StatusOK, map[string]any{"objectDescribe": describe(obj, version), "recentItems": []any{}})
	case len(parts) == 2 && parts[1] == "describe":
		writeJSON(w, http.StatusOK, describe(obj, version))
	case len(parts) == 2:
		s.retrieve(w, r, obj, parts[1], version)
	default:
		writeErrors(w, &apiError{Status: http.StatusNotFound, Code: "NOT_FOUND", Message: "The requested resource does not exist"})
	}
}

// refuseWrite answers create and update. UserServicePresence refuses them as Salesforce does;
// the simulator does not model writes to the other objects either and says so.
func (s *Server) refuseWrite(w http.ResponseWriter, obj *object, verb string) {
	if obj.Name == "UserServicePresence" {
		writeErrors(w, &apiError{Status: 400, Code: "INVALID_TYPE_FOR_OPERATION",
			Message: fmt.Sprintf("entity type cannot be %s: %s", verb, obj.Label)})
		return
	}
	writeErrors(w, &apiError{Status: http.StatusMethodNotAllowed, Code: "METHOD_NOT_ALLOWED",
		Message: fmt.Sprintf("the simulator does not accept writes to %s", obj.Name)})
}

func describe(o *object, version string) map[string]any {
	var fields []map[string]any
	for _, f := range o.Fields {
		fd := map[string]any{"name": f.Name, "label": f.Label, "type": string(f.Type), "nillable": f.Name != "Id",
			"filterable": true, "sortable": true, "createable": o.Createable && f.Name != "Id", "updateable": o.Updateable && f.Name != "Id",
			"referenceTo": []string{}, "relationshipName": nil}
		if f.RefTo != "" {
			fd["referenceTo"] = []string{f.RefTo}
			fd["relationshipName"] = f.RelName
		}
		fields = append(fields, fd)
	}
	return map[string]any{"name": o.Name, "label": o.Label, "labelPlural": o.Plural, "keyPrefix": o.Prefix,
		"createable": o.Createable, "updateable": o.Updateable, "deletable": o.Name == "UserServicePresence",
		"queryable": true, "retrieveable": true, "fields": fields,
		"urls": map[string]string{"sobject": fmt.Sprintf("/services/data/v%s/sobjects/%s", version, o.Name)}}
}

func (s *Server) retrieve(w http.ResponseWriter, r *http.Request, obj *object, rawID, version string) {
	id, ok := sfid.Canonical(rawID)
	s.org.mu.Lock()
	rec := s.org.byID[id]
	s.org.mu.Unlock()
	if !ok || rec == nil || !strings.HasPrefix(id, obj.Prefix) {
		writeErrors(w, &apiError{Status: http.StatusNotFound, Code: "NOT_FOUND", Message: "The requested resource does not exist"})
		return
	}
	var names []FieldPath
	if fl := r.URL.Query().Get("fields"); fl != "" {
		for _, n := range strings.Split(fl, ",") {
			names = append(names, FieldPath{strings.TrimSpace(n)})
		}
	} else {
		for _, f := range obj.Fields {
			names = append(names, FieldPath{f.Name})
		}
	}
	var sel []resolved
	for _, n := range names {
		rs, err := resolve(obj, n)
		if err != nil || len(rs.path) != 1 {
			if err == nil {
				err = invalidField(obj, n.String())
			}
			writeErrors(w, err)
			return
		}
		sel = append(sel, rs)
	}
	s.org.mu.Lock()
	out := s.org.render(obj, rec, sel, version)
	s.org.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// identity serves the identity URL returned by the token endpoint.
func (s *Server) identity(w http.ResponseWriter, r *http.Request) {
	ss, ok := s.authREST(w, r)
	if !ok {
		return
	}
	s.org.mu.Lock()
	u := s.org.byID[ss.userID]
	s.org.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"id": baseURL(r) + r.URL.Path, "user_id": ss.userID,
		"organization_id": s.org.id, "username": u["Username"], "email": u["Email"], "display_name": u["Name"],
		"active": true, "user_type": "STANDARD"})
}

// control serves the simulator's own surface, outside /services:
//
//	GET  /_sim/users/{user}/presence          → {"user_id","status"}
//	POST /_sim/users/{user}/status {"status","reason"} → the Change
//	POST /_sim/users/{user}/work {"action":"route|accept|close","channel"} → the Work
//
// {user} is an id, username or email; status is a DeveloperName or Offline.
func (s *Server) control(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/_sim/users/")
	user, action, _ := strings.Cut(rest, "/")
	switch {
	case action == "presence" && r.Method == http.MethodGet:
		st, err := s.Presence(user)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		id, _ := s.UserID(user)
		writeJSON(w, http.StatusOK, map[string]string{"user_id": id, "status": st})
	case action == "status" && r.Method == http.MethodPost:
		var body struct {
			Status string `json:"status"`
			Reason string `json:"reason"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil || body.Status == "" {
			http.Error(w, `body must be {"status":"<DeveloperName>|Offline","reason":"…"}`, http.StatusBadRequest)
			return
		}
		if body.Reason == "" {
			body.Reason = "OmniManualStatusChange"
		}
		ch, err := s.SetStatus(user, body.Status, body.Reason)
		switch {
		case errors.Is(err, ErrUnknownUser):
			http.Error(w, err.Error(), http.StatusNotFound)
		case err != nil:
			http.Error(w, err.Error(), http.StatusBadRequest)
		default:
			writeJSON(w, http.StatusOK, ch)
		}
	case action == "work" && r.Method == http.MethodPost:
		var body struct {
			Action  string `json:"action"`
			Channel string `json:"channel"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
		dec.DisallowUnknownFields()
		ops := map[string]func(string, string) (Work, error){"route": s.RouteWork, "accept": s.AcceptWork, "close": s.CloseWork}
		if err := dec.Decode(&body); err != nil || ops[body.Action] == nil || body.Channel == "" {
			http.Error(w, `body must be {"action":"route|accept|close","channel":"<ServiceChannel DeveloperName>"}`, http.StatusBadRequest)
			return
		}
		wk, err := ops[body.Action](user, body.Channel)
		switch {
		case errors.Is(err, ErrUnknownUser):
			http.Error(w, err.Error(), http.StatusNotFound)
		case errors.Is(err, ErrNoWork):
			http.Error(w, err.Error(), http.StatusConflict)
		case err != nil:
			http.Error(w, err.Error(), http.StatusBadRequest)
		default:
			writeJSON(w, http.StatusOK, wk)
		}
	default:
		http.Error(w, "not found", http.StatusNotFound)
	}
}
