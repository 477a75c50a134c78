package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/omnipresence/omnipresence/internal/policy"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/settings"
)

// ExtensionCall is one request to a policy's extension webhook (the Genesys CX Cloud
// "enhanced status sync" contract): for a change on one side, the current and target status of
// every side. The sides are the systems whose vendor plays one (connector.Vendor.Extension):
// Salesforce's "salesforceStatus" and Genesys's "genesysCloudStatus". The engine makes the call
// after the event's decision is committed; the answer may change the targets.
type ExtensionCall struct {
	Agent    string
	Policy   string
	URL      string
	Timeout  time.Duration
	EventSeq int64
	// At and From are the cause's time and system; the answer's intents carry them.
	At    time.Time
	From  string
	Cause string
	// Sides are the systems the call speaks of, in the order of the policy's systems.
	Sides []ExtensionSide
	// Body is the JSON sent.
	Body []byte
}

// ExtensionSide is one system of an extension call.
type ExtensionSide struct {
	// System is the system's name; Key and IDKey are its vendor's keys in the contract.
	System, Key, IDKey string
	// Sent is the target status id sent, to recognise "no change".
	Sent string
}

// extensionStatus is one side of the request.
type extensionStatus struct {
	CurrentStatus map[string]string `json:"currentStatus"`
	TargetStatus  map[string]string `json:"targetStatus"`
}

// ExtensionAnswer is the webhook's answer: per side key, the target it wants
// ({"genesysCloudStatus": {"targetStatus": {"id": …}}}).
type ExtensionAnswer map[string]struct {
	TargetStatus map[string]any `json:"targetStatus"`
}

// target returns the status id the answer gives for a side, or "".
func (a ExtensionAnswer) target(side ExtensionSide) string {
	id, _ := a[side.Key].TargetStatus[side.IDKey].(string)
	return id
}

// extensionSides returns the first system of each side the contract speaks of.
func (m *Machine) extensionSides() []ExtensionSide {
	var out []ExtensionSide
	for _, name := range m.cfg.SystemNames {
		x := m.cfg.Systems[name].Vendor.Extension
		if x == nil || slices.ContainsFunc(out, func(s ExtensionSide) bool { return s.Key == x.Key }) {
			continue
		}
		out = append(out, ExtensionSide{System: name, Key: x.Key, IDKey: x.IDKey})
	}
	return out
}

// queueExtension prepares the extension call for a status change on one side, after the
// policy's own decision: targets are the intents just decided, or the current status. The
// contract needs two sides; with fewer, or for an event of another system, nothing is called.
func (m *Machine) queueExtension(email string, f *foldState, pol *policy.Policy, ev presence.Event,
	oldStatus, newStatus presence.Status, cause string, seq int64) {
	sides := m.extensionSides()
	if len(sides) < 2 || !slices.ContainsFunc(sides, func(s ExtensionSide) bool { return s.System == ev.System }) {
		return
	}
	req := map[string]any{"agent": email}
	for i := range sides {
		sys := sides[i].System
		cur, target := oldStatus, newStatus
		if sys != ev.System {
			cur = presence.Status{}
			if st := m.agents[email]; st != nil && st.Systems[sys] != nil {
				cur = m.statusByID(sys, st.Systems[sys].observed())
			}
			target = cur
			if t := f.shows(sys); t != "" {
				target = m.statusByID(sys, t)
			}
		}
		render := m.cfg.Systems[sys].Vendor.Extension.Status
		req[sides[i].Key] = extensionStatus{CurrentStatus: nonEmpty(render(cur)), TargetStatus: nonEmpty(render(target))}
		sides[i].Sent = target.ID
	}
	body, err := json.Marshal(req)
	if err != nil {
		return
	}
	m.extCalls = append(m.extCalls, ExtensionCall{Agent: email, Policy: pol.Name, URL: pol.Extension.URL,
		Timeout: pol.Extension.Timeout, EventSeq: seq, At: ev.At, From: ev.System, Cause: cause,
		Sides: sides, Body: body})
}

// nonEmpty drops the empty values of a rendered status.
func nonEmpty(m map[string]string) map[string]string {
	for k, v := range m {
		if v == "" {
			delete(m, k)
		}
	}
	return m
}

// TakeExtensionCalls returns the calls queued since the last take.
func (m *Machine) TakeExtensionCalls() []ExtensionCall {
	calls := m.extCalls
	m.extCalls = nil
	return calls
}

// ApplyExtension records the webhook's answer (or failure): a target id other than the one
// sent becomes an intent with the original cause; the same id, or none, changes nothing.
// It returns the agent to reconcile.
func (m *Machine) ApplyExtension(call ExtensionCall, ans ExtensionAnswer, callErr error, now time.Time) string {
	st := m.agents[call.Agent]
	if st == nil {
		return ""
	}
	m.dirty[call.Agent] = true
	rule := call.Policy + "/extension"
	if callErr != nil {
		m.record(call.Agent, now, call.EventSeq, Step{Kind: StepExtensionFailed, Rule: rule, Cause: call.Cause,
			Summary: fmt.Sprintf("extension %s did not answer usefully (%v); the policy's own decision stands", call.URL, callErr)})
		return ""
	}
	step := Step{Kind: StepExtension, Rule: rule, Cause: call.Cause, Summary: "extension answered: no change"}
	var targets []extTarget
	for _, side := range call.Sides {
		got := ans.target(side)
		if got == "" || got == side.Sent {
			step.Details = append(step.Details, fmt.Sprintf("%s: no change", side.System))
			continue
		}
		status, ok := presence.Status{ID: got, Name: got, Settable: true}, true
		if c := m.cfg.Systems[side.System].Catalog; c != nil {
			status, ok = c.ByID(got)
		}
		if !ok || status.Category == presence.CategorySystem || !status.Settable {
			step.Details = append(step.Details, fmt.Sprintf("%s: %q is not a settable status of %s; ignored", side.System, got, side.System))
			continue
		}
		step.Details = append(step.Details, fmt.Sprintf("%s: %s", side.System, status.Name))
		targets = append(targets, extTarget{System: side.System, Status: status.ID})
	}
	if len(targets) == 0 {
		m.record(call.Agent, now, call.EventSeq, step)
		return ""
	}
	step.Summary = "extension answered with new targets"
	idx := -1
	for i := range st.History {
		if st.History[i].Seq == call.EventSeq {
			idx = i
		}
	}
	if idx < 0 {
		step.Summary = "extension answered with new targets, but the change it was asked about is older than the history kept; ignored"
		m.record(call.Agent, now, call.EventSeq, step)
		return ""
	}
	m.record(call.Agent, now, call.EventSeq, step)
	st.History[idx].Ext = targets
	m.refold(st)
	m.syncTargets(call.Agent, st, now)
	return call.Agent
}

// maxExtensionAnswer bounds the webhook's answer.
const maxExtensionAnswer = 64 << 10

// CallExtension POSTs call's body to its URL (with ${ENV} references resolved now) and decodes
// the answer within the call's timeout.
func CallExtension(ctx context.Context, client *http.Client, call ExtensionCall) (ExtensionAnswer, error) {
	var ans ExtensionAnswer
	target, err := settings.Expand(call.URL, nil)
	if err != nil {
		return ans, err
	}
	if u, err := url.Parse(target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ans, fmt.Errorf("extension url %q is not an http(s) URL", target)
	}
	ctx, cancel := context.WithTimeout(ctx, call.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(call.Body))
	if err != nil {
		return ans, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return ans, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return ans, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxExtensionAnswer+1))
	if err != nil {
		return ans, err
	}
	if len(body) > maxExtensionAnswer {
		return ans, fmt.Errorf("answer larger than %d bytes", maxExtensionAnswer)
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return ans, fmt.Errorf("answer is not the expected JSON: %w", err)
	}
	return ans, nil
}
