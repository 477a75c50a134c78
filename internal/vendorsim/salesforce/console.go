package salesforce

import (
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"strings"

	salesforcebridge "github.com/omnipresence/omnipresence/bridge/salesforce"
)

// The agent console stands in for a Lightning console app of one user: an Omni-Channel widget,
// and the Omni toolkit API and Omni events the way the Lightning console offers them to
// utility-bar components, so the omnipresence bridge can run inside it unmodified. Changes
// made in the page go through the same org methods as any other, producing the
// UserServicePresence rows and change events Omni-Channel produces.
//
//	GET  /console/{user}                    the page
//	GET  /console/{user}/state              {"loggedIn","status","reason","statuses","workload"}
//	POST /console/{user}/status             {"statusId","reason"} → the new status (logs in if needed)
//	POST /console/{user}/logout             {"reason"} → 204
//	GET  /console/assets/console.js         the widget, toolkit and events
//	GET  /console/assets/host.js            runs the omnipresence bridge in the page (with ?service=)
//	GET  /console/assets/omnipresenceBridge.js  the bridge core, as admins deploy it
//	GET  /console/{user}/bridge-token       a bridge token for the user (Config.BridgeSecret)
//
// {user} is an id, username or email.

//go:embed console/console.js console/console.html console/host.js
var consoleFiles embed.FS

var consolePage = template.Must(template.ParseFS(consoleFiles, "console/console.html"))

// ConsoleStatus is a presence status as the Omni toolkit reports it.
type ConsoleStatus struct {
	StatusID      string           `json:"statusId"`
	StatusAPIName string           `json:"statusApiName"`
	StatusName    string           `json:"statusName"`
	Channels      []ConsoleChannel `json:"channels"`
}

// ConsoleChannel is a service channel of a status.
type ConsoleChannel struct {
	ChannelID     string `json:"channelId"`
	DeveloperName string `json:"developerName"`
}

// consoleStatuses lists the catalog as the toolkit reports statuses, sorted by DeveloperName.
func (o *org) consoleStatuses() []ConsoleStatus {
	o.mu.Lock()
	defer o.mu.Unlock()
	channels := map[string]ConsoleChannel{}
	for _, c := range o.tables["ServiceChannel"] {
		channels[c["Id"].(string)] = ConsoleChannel{ChannelID: c["Id"].(string), DeveloperName: c["DeveloperName"].(string)}
	}
	byStatus := map[string][]ConsoleChannel{}
	for _, l := range o.tables["ServiceChannelStatus"] {
		sid := l["ServicePresenceStatusId"].(string)
		byStatus[sid] = append(byStatus[sid], channels[l["ServiceChannelId"].(string)])
	}
	var out []ConsoleStatus
	for _, s := range o.tables["ServicePresenceStatus"] {
		id := s["Id"].(string)
		chs := byStatus[id]
		if chs == nil {
			chs = []ConsoleChannel{}
		}
		out = append(out, ConsoleStatus{StatusID: id, StatusAPIName: s["DeveloperName"].(string), StatusName: s["MasterLabel"].(string), Channels: chs})
	}
	sortStatuses(out)
	return out
}

func sortStatuses(s []ConsoleStatus) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].StatusAPIName < s[j-1].StatusAPIName; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

type consoleState struct {
	UserID   string          `json:"userId"`
	LoggedIn bool            `json:"loggedIn"`
	Status   *ConsoleStatus  `json:"status"`
	Reason   string          `json:"reason,omitempty"`
	Statuses []ConsoleStatus `json:"statuses"`
	Workload map[string]any  `json:"workload"`
}

func (s *Server) consoleState(user string) (consoleState, error) {
	id, err := s.UserID(user)
	if err != nil {
		return consoleState{}, err
	}
	current, err := s.Presence(user)
	if err != nil {
		return consoleState{}, err
	}
	st := consoleState{UserID: id, Statuses: s.org.consoleStatuses(), Reason: s.lastReason(id),
		Workload: map[string]any{"configuredCapacity": s.org.capac, "currentWorkload": 0,
			"configuredInterruptibleCapacity": 0, "currentInterruptibleWorkload": 0}}
	for i := range st.Statuses {
		if st.Statuses[i].StatusAPIName == current {
			st.LoggedIn, st.Status = true, &st.Statuses[i]
		}
	}
	return st, nil
}

// lastReason is the reason of the user's latest status change, as Omni reports it in
// omniChannelStatusChanged.
func (s *Server) lastReason(userID string) string {
	s.reasonsMu.Lock()
	defer s.reasonsMu.Unlock()
	return s.reasons[userID]
}

func (s *Server) rememberReason(ch Change) {
	s.reasonsMu.Lock()
	defer s.reasonsMu.Unlock()
	if s.reasons == nil {
		s.reasons = map[string]string{}
	}
	s.reasons[ch.UserID] = ch.Reason
}

func (s *Server) console(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/console/")
	if asset, ok := strings.CutPrefix(rest, "assets/"); ok && r.Method == http.MethodGet {
		var b []byte
		switch asset {
		case "console.js", "host.js":
			b, _ = consoleFiles.ReadFile("console/" + asset)
		case "omnipresenceBridge.js":
			b = salesforcebridge.Core
		default:
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		_, _ = w.Write(b)
		return
	}
	user, action, _ := strings.Cut(rest, "/")
	notFound := func(err error) bool {
		if errors.Is(err, ErrUnknownUser) {
			http.Error(w, err.Error(), http.StatusNotFound)
			return true
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return true
		}
		return false
	}
	switch {
	case action == "" && r.Method == http.MethodGet:
		st, err := s.consoleState(user)
		if notFound(err) {
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = consolePage.Execute(w, map[string]any{"User": st.UserID})
	case action == "bridge-token" && r.Method == http.MethodGet:
		if len(s.cfg.BridgeSecret) == 0 {
			http.Error(w, "no bridge secret configured", http.StatusNotFound)
			return
		}
		id, err := s.UserID(user)
		if notFound(err) {
			return
		}
		token, err := s.mintBridgeToken(id)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		s.noteConsolePoll(id, true)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte(token))
	case action == "state" && r.Method == http.MethodGet:
		st, err := s.consoleState(user)
		if notFound(err) {
			return
		}
		s.noteConsolePoll(st.UserID, false)
		writeJSON(w, http.StatusOK, st)
	case action == "status" && r.Method == http.MethodPost:
		var body struct {
			StatusID string `json:"statusId"`
			Reason   string `json:"reason"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil || body.StatusID == "" || body.StatusID == "0" || body.StatusID == Offline {
			http.Error(w, `body must be {"statusId":"<ServicePresenceStatus id>","reason":"…"}`, http.StatusBadRequest)
			return
		}
		if body.Reason == "" {
			body.Reason = "OmniManualStatusChange"
		}
		if _, err := s.SetStatus(user, body.StatusID, body.Reason); notFound(err) {
			return
		}
		st, err := s.consoleState(user)
		if notFound(err) {
			return
		}
		writeJSON(w, http.StatusOK, st.Status)
	case action == "logout" && r.Method == http.MethodPost:
		if _, err := s.SetStatus(user, Offline, "OmniLoginStatusChange"); notFound(err) {
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		http.Error(w, "not found", http.StatusNotFound)
	}
}
