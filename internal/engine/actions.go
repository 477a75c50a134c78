package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
)

// ErrUnknownAgent is returned by the admin actions for an agent the engine does not know.
var ErrUnknownAgent = errors.New("engine: unknown agent")

// Retry clears a failed or deferred write of an agent on one system so that it goes out again
// now, as an admin asks from the console; it records the request in the agent's chain. It
// reports whether there was a write to retry.
func (m *Machine) Retry(agent, system string, now time.Time) (bool, error) {
	st := m.agents[agent]
	if st == nil {
		return false, ErrUnknownAgent
	}
	ss := st.Systems[system]
	if ss == nil || (ss.Failed == "" && ss.Deferred == "" && !ss.needsWrite()) {
		return false, nil
	}
	was := "due"
	switch {
	case ss.Failed != "":
		was = "failed: " + ss.Failed
	case ss.Deferred != "":
		was = "deferred: " + ss.Deferred
	}
	ss.Failed, ss.FailedFor = "", ""
	ss.Deferred, ss.DeferredFor = "", ""
	ss.Attempts, ss.NextAttempt = 0, time.Time{}
	m.dirty[agent] = true
	status := m.statusByID(system, ss.Target)
	var why cause
	if st.fold != nil && st.fold.Systems[system] != nil {
		why = st.fold.Systems[system].Cause
	}
	m.record(agent, now, why.Seq, Step{Kind: StepRetryRequested, System: system, Status: status.Name, Rule: why.Rule, Cause: why.Text,
		Summary: fmt.Sprintf("an admin asked to write %s to %s again (it was %s)", status.Name, system, was)})
	return true, nil
}

// Wake says a system can take writes for one of its accounts again (an agent's console
// connected its bridge): a write deferred for that account is tried now. It records nothing
// and returns the agent to reconcile ("" when none waits).
func (m *Machine) Wake(system, account string) string {
	email, ok := m.byID[system][account]
	if !ok {
		return ""
	}
	st := m.agents[email]
	if st == nil || st.Systems[system] == nil || st.Systems[system].Deferred == "" {
		return ""
	}
	ss := st.Systems[system]
	ss.Deferred, ss.NextAttempt = "", time.Time{}
	m.dirty[email] = true
	return email
}

// Wake tells the engine a system can take writes for an account again; a write deferred for it
// goes out now.
func (e *Engine) Wake(ctx context.Context, system, account string) {
	if resp, err := e.call(ctx, &request{kind: opWake, system: system, agent: account}); err == nil && resp.agent != "" {
		e.queue.Add(resp.agent)
	}
}

// Retry makes a failed or deferred write of an agent on one system go out again now. It
// reports whether there was one.
func (e *Engine) Retry(ctx context.Context, email, system string) (bool, error) {
	resp, err := e.call(ctx, &request{kind: opRetry, agent: normalizeEmail(email), system: system})
	if err != nil {
		return false, err
	}
	if resp.agent != "" {
		e.queue.Add(resp.agent)
	}
	return resp.agent != "", nil
}

// Resync reads what every system that can tell shows now for one agent, records it, and
// reconciles the agent: what an admin asks for when a system was changed behind the service's
// back. It returns the systems read.
func (e *Engine) Resync(ctx context.Context, email string) ([]string, error) {
	email = normalizeEmail(email)
	e.mu.RLock()
	_, known := e.m.agents[email]
	accounts := map[string]string{}
	for _, name := range e.cfg.Policy.SystemNames {
		if id, ok := e.m.account(name, email); ok {
			accounts[name] = id
		}
	}
	e.mu.RUnlock()
	if !known {
		return nil, ErrUnknownAgent
	}
	var read []string
	var errs []error
	for _, name := range e.cfg.Policy.SystemNames {
		cr, ok := e.cfg.Connectors[name].(connector.CurrentReader)
		account, linked := accounts[name]
		if !ok || !linked {
			continue
		}
		current, err := cr.CurrentStatuses(ctx, []string{account})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		if _, err := e.call(ctx, &request{kind: opObserve, system: name, current: current}); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		read = append(read, name)
	}
	e.queue.Add(email)
	return read, errors.Join(errs...)
}
