package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/omnipresence/omnipresence/internal/policy"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/settings"
)

// ExtensionCall is one request to a policy's extension webhook (the Genesys CX Cloud
// "enhanced status sync" contract): for a change on the Salesforce or the Genesys side, the
// current and target status of both sides. The engine makes it after the event's decision is
// committed; the answer may change the targets.
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
	// SF and GC name the two systems; Body is the JSON sent.
	SF, GC string
	Body   []byte
	// sentSF and sentGC are the target ids sent, to recognise "no change".
	sentSF, sentGC string
}

type sfStatus struct {
	StatusAPIName string `json:"statusApiName,omitempty"`
	StatusID      string `json:"statusId,omitempty"`
	StatusName    string `json:"statusName,omitempty"`
}

type gcStatus struct {
	ID             string `json:"id,omitempty"`
	SystemPresence string `json:"systemPresence,omitempty"`
}

type extensionRequest struct {
	Agent            string `json:"agent"`
	SalesforceStatus struct {
		CurrentStatus sfStatus `json:"currentStatus"`
		TargetStatus  sfStatus `json:"targetStatus"`
	} `json:"salesforceStatus"`
	GenesysCloudStatus struct {
		CurrentStatus gcStatus `json:"currentStatus"`
		TargetStatus  gcStatus `json:"targetStatus"`
	} `json:"genesysCloudStatus"`
}

// ExtensionAnswer is the webhook's answer: the target ids it wants.
type ExtensionAnswer struct {
	SalesforceStatus struct {
		TargetStatus sfStatus `json:"targetStatus"`
	} `json:"salesforceStatus"`
	GenesysCloudStatus struct {
		TargetStatus gcStatus `json:"targetStatus"`
	} `json:"genesysCloudStatus"`
}

// extensionSystems returns the Salesforce and the Genesys system the contract speaks of.
func (m *Machine) extensionSystems() (sf, gc string) {
	for _, name := range m.cfg.SystemNames {
		switch m.cfg.Systems[name].Kind {
		case policy.KindSalesforce:
			if sf == "" {
				sf = name
			}
		case policy.KindGenesys:
			if gc == "" {
				gc = name
			}
		}
	}
	return sf, gc
}

// queueExtension prepares the extension call for a status change on sf or gc, after the
// policy's own decision: targets are the intents just decided, or the current status.
func (m *Machine) queueExtension(email string, f *foldState, pol *policy.Policy, ev presence.Event,
	oldStatus, newStatus presence.Status, cause string, seq int64) {
	sf, gc := m.extensionSystems()
	if sf == "" || gc == "" || (ev.System != sf && ev.System != gc) {
		return
	}
	show := func(sys string) (cur, target presence.Status) {
		if sys == ev.System {
			return oldStatus, newStatus
		}
		if st := m.agents[email]; st != nil && st.Systems[sys] != nil {
			cur = m.statusByID(sys, st.Systems[sys].observed())
		}
		target = cur
		if t := f.shows(sys); t != "" {
			target = m.statusByID(sys, t)
		}
		return cur, target
	}
	var req extensionRequest
	req.Agent = email
	sfCur, sfTarget := show(sf)
	gcCur, gcTarget := show(gc)
	req.SalesforceStatus.CurrentStatus = sfStatus{sfCur.Name, sfCur.ID, sfCur.Label}
	req.SalesforceStatus.TargetStatus = sfStatus{sfTarget.Name, sfTarget.ID, sfTarget.Label}
	req.GenesysCloudStatus.CurrentStatus = gcStatus{gcCur.ID, gcPresence(gcCur)}
	req.GenesysCloudStatus.TargetStatus = gcStatus{gcTarget.ID, gcPresence(gcTarget)}
	body, err := json.Marshal(req)
	if err != nil {
		return
	}
	m.extCalls = append(m.extCalls, ExtensionCall{Agent: email, Policy: pol.Name, URL: pol.Extension.URL,
		Timeout: pol.Extension.Timeout, EventSeq: seq, At: ev.At, From: ev.System, Cause: cause,
		SF: sf, GC: gc, Body: body, sentSF: sfTarget.ID, sentGC: gcTarget.ID})
}

func gcPresence(s presence.Status) string {
	if s.SystemPresence != "" {
		return s.SystemPresence
	}
	return s.Name
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
	for _, side := range []struct{ sys, sent, got string }{
		{call.SF, call.sentSF, ans.SalesforceStatus.TargetStatus.StatusID},
		{call.GC, call.sentGC, ans.GenesysCloudStatus.TargetStatus.ID},
	} {
		if side.got == "" || side.got == side.sent {
			step.Details = append(step.Details, fmt.Sprintf("%s: no change", side.sys))
			continue
		}
		status, ok := presence.Status{ID: side.got, Name: side.got, Settable: true}, true
		if c := m.cfg.Systems[side.sys].Catalog; c != nil {
			status, ok = c.ByID(side.got)
		}
		if !ok || status.Category == presence.CategorySystem || !status.Settable {
			step.Details = append(step.Details, fmt.Sprintf("%s: %q is not a settable status of %s; ignored", side.sys, side.got, side.sys))
			continue
		}
		step.Details = append(step.Details, fmt.Sprintf("%s: %s", side.sys, status.Name))
		targets = append(targets, extTarget{System: side.sys, Status: status.ID})
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
