package salesforce

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	salesforcebridge "github.com/omnipresence/omnipresence/bridge/salesforce"
	"github.com/omnipresence/omnipresence/internal/connector/salesforce/sfid"
)

// The agent console stands in for a Lightning console app of one user: an Omni-Channel widget,
// and the Omni toolkit API and Omni events the way the Lightning console offers them to
// utility-bar components, so the omnipresence bridge runs inside it unmodified. Changes made
// in the page go through the same org methods as any other, producing the UserServicePresence
// rows and change events Omni-Channel produces.
//
// With ?service=URL the page runs the bridge's own Aura component (its controller and helper,
// as deployed) on a small stand-in for the Aura runtime, loading the bridge core the way the
// org's security layer evaluates a static resource: ?security=lws (the default, Lightning Web
// Security), locker (Lightning Locker: strict mode, no globalThis, a SecureWindow without
// AbortController, BroadcastChannel, Web Locks, TextDecoder), or plain (a <script>). Its Apex
// calls reach the emulated controller below. Tabs of one origin share localStorage, so two
// users' consoles in one browser share it, as in Salesforce.
//
//	GET  /console/{user}                    the page
//	GET  /console/{user}/state              {"userId","orgId","loggedIn","status","reason","statuses","workload","works"}
//	POST /console/{user}/status             {"statusId","reason"} → the new status (logs in if needed)
//	POST /console/{user}/logout             {"reason"} → 204
//	POST /console/{user}/apex/{method}      the bridge's Apex controller, as an Aura server action:
//	                                        {"params":{…}} → {"state":"SUCCESS","returnValue":…}
//	                                        or {"state":"ERROR","error":[{"message":…}]}
//	GET  /console/{user}/bridge-token       a bridge token for the user (text; for headless bridges)
//	GET  /console/assets/{file}             console.js, aura.js, and the bridge's files as deployed
//
// {user} is an id, username or email.

//go:embed console/console.js console/console.html console/aura.js
var consoleFiles embed.FS

var consolePage = template.Must(template.ParseFS(consoleFiles, "console/console.html"))

// bridgeAssets are the bridge's own files, served as Salesforce serves them to the component.
var bridgeAssets = map[string][]byte{
	"omnipresenceBridge.js":           salesforcebridge.Core,
	"omnipresenceBridge.cmp":          salesforcebridge.Component,
	"omnipresenceBridgeController.js": salesforcebridge.Controller,
	"omnipresenceBridgeHelper.js":     salesforcebridge.Helper,
}

// ConsoleStatus is a presence status as the Omni toolkit reports it: with its 15-character id.
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

// ConsoleWork is an AgentWork as getAgentWorks reports it.
type ConsoleWork struct {
	WorkID     string `json:"workId"`
	WorkItemID string `json:"workItemId"`
	IsEngaged  bool   `json:"isEngaged"`
}

// consoleStatuses lists the catalog as the toolkit reports statuses, sorted by DeveloperName.
func (o *org) consoleStatuses() []ConsoleStatus {
	o.mu.Lock()
	defer o.mu.Unlock()
	channels := map[string]ConsoleChannel{}
	for _, c := range o.tables["ServiceChannel"] {
		channels[c["Id"].(string)] = ConsoleChannel{ChannelID: sfid.To15(c["Id"].(string)), DeveloperName: c["DeveloperName"].(string)}
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
		out = append(out, ConsoleStatus{StatusID: sfid.To15(id), StatusAPIName: s["DeveloperName"].(string), StatusName: s["MasterLabel"].(string), Channels: chs})
	}
	sortStatuses(out)
	return out
}

// consoleWorks lists a user's open work: Assigned (not engaged yet) and Opened (engaged).
func (o *org) consoleWorks(userID string) []ConsoleWork {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := []ConsoleWork{}
	for _, w := range o.tables["AgentWork"] {
		if w["UserId"] != userID || (w["Status"] != WorkAssigned && w["Status"] != WorkOpened) {
			continue
		}
		out = append(out, ConsoleWork{WorkID: sfid.To15(w["Id"].(string)), WorkItemID: sfid.To15(w["WorkItemId"].(string)),
			IsEngaged: w["Status"] == WorkOpened})
	}
	return out
}

// serviceChannelOf answers the bridge controller's serviceChannelOf: the DeveloperName of the
// service channel of one of the user's own AgentWork records, "" when there is none.
func (o *org) serviceChannelOf(userID, workID string) string {
	id, ok := sfid.Canonical(workID)
	if !ok {
		return ""
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	w, ok := o.byID[id]
	if !ok || w["UserId"] != userID {
		return ""
	}
	name, _ := o.byID[w["ServiceChannelId"].(string)]["DeveloperName"].(string)
	return name
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
	OrgID    string          `json:"orgId"`
	LoggedIn bool            `json:"loggedIn"`
	Status   *ConsoleStatus  `json:"status"`
	Reason   string          `json:"reason,omitempty"`
	Statuses []ConsoleStatus `json:"statuses"`
	Workload map[string]any  `json:"workload"`
	Works    []ConsoleWork   `json:"works"`
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
	st := consoleState{UserID: id, OrgID: s.org.id, Statuses: s.org.consoleStatuses(), Reason: s.lastReason(id),
		Works: s.org.consoleWorks(id),
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
// omniChannelStatusChanged (and, for the logout reasons, omniChannelLogout).
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

// bridgeTokenLifetime is how long the tokens the console mints live (the Apex default).
const bridgeTokenLifetime = 10 * time.Minute

// defaultCertificate is the certificate the bridge's Apex signs with unless its settings name
// another; the emulated controller names it in its errors, as Apex does.
const defaultCertificate = "omnipresence_bridge"

// MintBridgeToken returns a bridge token for the user (an id, username or email), signed as the
// bridge's Apex controller signs it; it fails when the server has no BridgeSigner, as the
// controller does in an org without the certificate.
func (s *Server) MintBridgeToken(user string) (string, error) {
	id, err := s.UserID(user)
	if err != nil {
		return "", err
	}
	if s.cfg.BridgeSigner == nil {
		//lint:ignore ST1005 the message is the bridge's Apex controller's, which the console shows
		return "", fmt.Errorf(`Omnipresence bridge: cannot sign with the certificate %q (Setup > Certificate and Key Management): `+
			`Certificate not found (start the simulator with --bridge-key-file)`, defaultCertificate)
	}
	return s.cfg.BridgeSigner.Mint(s.org.id, id, bridgeTokenLifetime)
}

// apex answers the bridge controller's @AuraEnabled methods the way Aura delivers them.
func (s *Server) apex(w http.ResponseWriter, r *http.Request, user, method string) {
	var body struct {
		Params map[string]any `json:"params"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	if err := dec.Decode(&body); err != nil {
		http.Error(w, `body must be {"params":{…}}`, http.StatusBadRequest)
		return
	}
	fail := func(msg string) {
		writeJSON(w, http.StatusOK, map[string]any{"state": "ERROR", "error": []map[string]string{{"message": msg}}})
	}
	ok := func(v any) { writeJSON(w, http.StatusOK, map[string]any{"state": "SUCCESS", "returnValue": v}) }
	id, err := s.UserID(user)
	if err != nil {
		fail(err.Error())
		return
	}
	if method == "bridgeSettings" || method == "mintToken" {
		// A page that asks for a token runs its own bridge: the user's headless console steps aside.
		s.noteConsolePoll(id, true)
	}
	switch method {
	case "bridgeSettings":
		// The page's ?service= stands in for the Default settings record's Service URL.
		service := r.URL.Query().Get("service")
		if u, err := url.Parse(service); service == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			fail(`Omnipresence bridge: set Service URL in the OmnipresenceBridgeSetting "Default" custom metadata record.`)
			return
		}
		tok, err := s.MintBridgeToken(id)
		if err != nil {
			fail(err.Error())
			return
		}
		ok(map[string]any{"serviceUrl": service, "orgId": s.org.id, "userId": id, "token": tok})
	case "mintToken":
		tok, err := s.MintBridgeToken(id)
		if err != nil {
			fail(err.Error())
			return
		}
		ok(tok)
	case "serviceChannelOf":
		workID, _ := body.Params["workId"].(string)
		if name := s.org.serviceChannelOf(id, workID); name != "" {
			ok(name)
			return
		}
		ok(nil)
	default:
		fail(fmt.Sprintf("Unable to find action '%s' on the controller of omnipresenceBridge", method))
	}
}

func (s *Server) console(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/console/")
	if asset, ok := strings.CutPrefix(rest, "assets/"); ok && r.Method == http.MethodGet {
		b, found := bridgeAssets[asset]
		if !found && (asset == "console.js" || asset == "aura.js") {
			b, _ = consoleFiles.ReadFile("console/" + asset)
			found = true
		}
		if !found {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		ctype := "text/javascript; charset=utf-8"
		if strings.HasSuffix(asset, ".cmp") {
			ctype = "text/xml; charset=utf-8"
		}
		w.Header().Set("Content-Type", ctype)
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
	case strings.HasPrefix(action, "apex/") && r.Method == http.MethodPost:
		s.apex(w, r, user, strings.TrimPrefix(action, "apex/"))
	case action == "bridge-token" && r.Method == http.MethodGet:
		tok, err := s.MintBridgeToken(user)
		if errors.Is(err, ErrUnknownUser) {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte(tok))
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
