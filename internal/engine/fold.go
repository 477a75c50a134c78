package engine

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/omnipresence/omnipresence/internal/policy"
	"github.com/omnipresence/omnipresence/internal/presence"
)

// maxEnded bounds how many activity ends without a start an agent remembers.
const maxEnded = 16

// folder applies changes to a foldState under an agent's policy: the decision the policy makes
// for one change, in the ideal world where every intent shows at once. While it replays
// history it records nothing; for the change being decided it records explain steps through
// rec and queues extension calls.
type folder struct {
	m     *Machine
	email string
	pol   *policy.Policy
	f     *foldState
	// rec records a step of the change being decided; nil while replaying.
	rec func(Step)
	// judged makes intents older than the cause in force lose (a change older than the
	// retained history, decided against what is known instead of replayed in order).
	judged bool
	// intents collects the targets the recorded change set, for "superseded" afterwards.
	intents []decided
}

// decided is one target a change set, which a later change may override.
type decided struct {
	system, status, rule string
}

// note keeps a target the recorded change set.
func (fd *folder) note(d decided) {
	if fd.rec != nil {
		fd.intents = append(fd.intents, d)
	}
}

func (fd *folder) record(s Step) {
	if fd.rec != nil {
		fd.rec(s)
	}
}

// current returns what each system shows in the policy's view; the map is reused.
func (fd *folder) current() map[string]presence.Status {
	m := fd.m
	if m.current == nil {
		m.current = map[string]presence.Status{}
	}
	out := m.current
	clear(out)
	for name := range fd.f.Systems {
		if id := fd.f.shows(name); id != "" {
			out[name] = m.statusByID(name, id)
		}
	}
	return out
}

// apply decides one change.
func (fd *folder) apply(c *change) {
	m, f := fd.m, fd.f
	ev := c.Event
	sys := ev.System
	text := m.describe(ev)
	fs := f.system(sys)
	var newS, oldS presence.Status
	if ev.Origin == presence.OriginSelf {
		// Our write landed while the system was in a state only its vendor ends: that state
		// is over, and the write is what it shows.
		if fs.State != "" {
			fd.record(Step{Kind: StepStateEnded, System: sys, Status: m.statusByID(sys, ev.Status).Name, Cause: text,
				Summary: fmt.Sprintf("%s left %s: our write of %s took effect", sys, m.statusByID(sys, fs.State).Name,
					m.statusByID(sys, ev.Status).Name)})
			fs.State, fs.StateSince = "", time.Time{}
		}
		return
	}
	if ev.ChangesStatus() {
		newS = m.statusByID(sys, ev.Status)
		old := f.shows(sys)
		oldS = m.statusByID(sys, old)
		if newS.ID == old {
			fd.record(Step{Kind: StepUnchanged, System: sys, Status: newS.Name, Cause: text,
				Summary: fmt.Sprintf("%s already shows %s under the policy; nothing to decide", sys, newS.Name)})
			return
		}
		switch {
		case isSystemState(newS):
			if fs.State == "" {
				fs.StateSince = ev.At
			}
			fs.State = newS.ID
		case fs.State != "":
			since := fs.StateSince
			fs.State, fs.StateSince = "", time.Time{}
			if fs.Target != "" && fs.Cause.At.After(since) {
				fd.record(Step{Kind: StepStateEnded, System: sys, Status: newS.Name, Cause: text,
					Summary: fmt.Sprintf("%s left %s; the status decided meanwhile, %s, goes out now", sys, oldS.Name,
						m.statusByID(sys, fs.Target).Name)})
				return
			}
			fd.personChange(c, fs, newS, text)
		default:
			fd.personChange(c, fs, newS, text)
		}
	} else {
		newS = m.statusByID(sys, f.shows(sys))
		oldS = newS
	}
	if fd.pol == nil {
		if fd.rec != nil {
			m.Stats.NoPolicy.Add(1)
		}
		fd.record(Step{Kind: StepEvent, System: sys, Status: newS.Name, Cause: text,
			Summary: fmt.Sprintf("%s: no policy applies to %s", text, fd.email)})
		return
	}
	eval := fd.pol.Evaluate(policy.Input{Event: withAgent(ev, fd.email), New: newS, Old: oldS, Current: fd.current()})
	if fd.rec != nil {
		step := Step{Kind: StepEvent, System: sys, Status: newS.Name, Cause: text, Summary: text}
		for _, s := range eval.Steps {
			mark := "·"
			if s.Matched {
				mark = "✓"
			}
			step.Details = append(step.Details, fmt.Sprintf("%s %s: %s", mark, s.Rule, s.Detail))
		}
		if eval.Unmapped && len(c.Ext) == 0 {
			m.Stats.Unmapped.Add(1)
			step.Kind = StepUnmapped
			step.Summary = text + ": no map, rule or activity matched; no change"
		}
		fd.record(step)
	}
	why := cause{At: ev.At, System: sys, Text: text, Seq: c.Seq}
	for _, in := range eval.Intents {
		why.Rule = in.Rule
		fd.intend(in.System, in.Status.ID, why)
	}
	for _, hit := range eval.Ends {
		fd.endActivity(hit, ev, why)
	}
	for _, hit := range eval.Starts {
		fd.startActivity(hit, ev, why)
	}
	if len(c.Ext) > 0 {
		why.Rule = fd.pol.Name + "/extension"
		for _, t := range c.Ext {
			fd.intend(t.System, t.Status, why)
		}
	}
	if fd.rec != nil && fd.pol.Extension != nil && ev.ChangesStatus() {
		m.queueExtension(fd.email, f, fd.pol, ev, oldS, newS, text, c.Seq)
	}
}

// personChange makes a status a person (or their vendor) chose the system's target.
func (fd *folder) personChange(c *change, fs *foldSystem, status presence.Status, text string) {
	ev := c.Event
	why := cause{At: ev.At, System: ev.System, Rule: "manual change", Text: text, Seq: c.Seq}
	if fd.judged && fs.Cause.At.After(ev.At) {
		fd.record(Step{Kind: StepSuperseded, System: ev.System, Status: status.Name, Cause: text,
			Summary: fmt.Sprintf("%s is older than the cause in force on %s (%s at %s)", status.Name, ev.System,
				fs.Cause.Text, stamp(fs.Cause.At))})
		return
	}
	fs.Target, fs.Cause = status.ID, why
	fd.note(decided{ev.System, status.ID, why.Rule})
	if ov := fs.Overlay; ov != nil && !ov.Released && fd.covering(ev.System) != nil {
		ov.Released = true
		fd.record(Step{Kind: StepActivityReleased, System: ev.System, Status: status.Name, Cause: text,
			Summary: fmt.Sprintf("changed by hand during an activity: %s stays when the activity ends", status.Name)})
	}
}

// intend makes system's target statusID because of why, unless an activity covers the system
// (the intent then waits for the activity's end).
func (fd *folder) intend(system, statusID string, why cause) {
	m, f := fd.m, fd.f
	name := m.statusByID(system, statusID).Name
	if _, ok := m.account(system, fd.email); !ok {
		fd.record(Step{Kind: StepNoAccount, System: system, Status: name, Rule: why.Rule, Cause: why.Text,
			Summary: fmt.Sprintf("%s has no account in %s; %s not applied", fd.email, system, name)})
		return
	}
	fs := f.system(system)
	if fd.judged && fs.Cause.At.After(why.At) {
		if fd.rec != nil {
			m.Stats.Superseded.Add(1)
		}
		fd.record(Step{Kind: StepSuperseded, System: system, Status: name, Rule: why.Rule, Cause: why.Text,
			Summary: fmt.Sprintf("%s → %s is older than the cause in force on %s (%s at %s); ignored",
				why.Rule, name, system, fs.Cause.Text, stamp(fs.Cause.At))})
		return
	}
	if ov := fs.Overlay; ov != nil && !ov.Released && fd.covering(system) != nil {
		ov.Base, ov.BaseWhy = statusID, why
		fd.record(Step{Kind: StepHeld, System: system, Status: name, Rule: why.Rule, Cause: why.Text,
			Summary: fmt.Sprintf("%s should show %s, but an activity covers it; applied when the activity ends", system, name)})
		return
	}
	fs.Target, fs.Cause = statusID, why
	fd.note(decided{system, statusID, why.Rule})
	summary := fmt.Sprintf("%s should show %s (%s)", system, name, why.Rule)
	if fs.State != "" {
		summary += fmt.Sprintf("; it is in %s, which only %s ends, so the write may wait", m.statusByID(system, fs.State).Name, system)
	}
	fd.record(Step{Kind: StepIntent, System: system, Status: name, Rule: why.Rule, Cause: why.Text, Summary: summary})
}

// covering returns the newest running activity that covers sys.
func (fd *folder) covering(sys string) *activityInstance {
	acts := fd.f.Activities
	for i := len(acts) - 1; i >= 0; i-- {
		if _, ok := acts[i].Statuses[sys]; ok {
			return acts[i]
		}
	}
	return nil
}

func (fd *folder) startActivity(hit policy.ActivityHit, ev presence.Event, why cause) {
	m, f := fd.m, fd.f
	name := hit.Activity.Name
	for _, inst := range f.Activities {
		if inst.Name == name && inst.Key == hit.Key {
			fd.record(Step{Kind: StepActivity, Rule: name, Cause: why.Text,
				Summary: fmt.Sprintf("%s %s is already running", name, hit.Key)})
			return
		}
	}
	for i, e := range f.Ended {
		if e.Name == name && e.Key == hit.Key && !e.At.Before(ev.At) {
			f.Ended = slices.Delete(f.Ended, i, i+1)
			fd.record(Step{Kind: StepActivity, Rule: name, Cause: why.Text,
				Summary: fmt.Sprintf("%s%s already ended at %s; nothing to overlay", name, keySuffix(hit.Key), stamp(e.At))})
			return
		}
	}
	inst := &activityInstance{Name: name, Key: hit.Key, Since: ev.At, Statuses: map[string]string{}}
	var systems []string
	for sys, status := range hit.Activity.Set {
		if _, ok := m.account(sys, fd.email); !ok {
			continue
		}
		inst.Statuses[sys] = status.ID
		systems = append(systems, sys)
	}
	sort.Strings(systems)
	why.Rule = name
	for _, sys := range systems {
		fs := f.system(sys)
		if fs.Overlay == nil || (fs.Overlay.Released && fd.covering(sys) == nil) {
			fs.Overlay = &overlay{Base: fs.Target, BaseWhy: fs.Cause}
		}
		if fs.Overlay.Released {
			continue
		}
		fs.Target, fs.Cause = inst.Statuses[sys], why
		fd.note(decided{sys, inst.Statuses[sys], name})
	}
	f.Activities = append(f.Activities, inst)
	fd.record(Step{Kind: StepActivityStart, Rule: name, Cause: why.Text,
		Summary: fmt.Sprintf("%s started%s: %s", name, keySuffix(hit.Key), m.describeSet(inst.Statuses))})
}

func (fd *folder) endActivity(hit policy.ActivityHit, ev presence.Event, why cause) {
	m, f := fd.m, fd.f
	name := hit.Activity.Name
	idx := -1
	for i, inst := range f.Activities {
		if inst.Name == name && (hit.Key == "" || inst.Key == hit.Key) {
			idx = i
			break
		}
	}
	if idx < 0 {
		f.Ended = append(f.Ended, endedActivity{Name: name, Key: hit.Key, At: ev.At})
		if len(f.Ended) > maxEnded {
			f.Ended = f.Ended[len(f.Ended)-maxEnded:]
		}
		fd.record(Step{Kind: StepActivity, Rule: name, Cause: why.Text,
			Summary: fmt.Sprintf("%s ended%s, but it was not running; nothing to restore (a start that arrives later is known to be over)",
				name, keySuffix(hit.Key))})
		return
	}
	inst := f.Activities[idx]
	f.Activities = slices.Delete(f.Activities, idx, idx+1)
	if len(f.Activities) == 0 {
		f.Activities = nil
	}
	fd.record(Step{Kind: StepActivityEnd, Rule: inst.Name, Cause: why.Text,
		Summary: fmt.Sprintf("%s ended%s", inst.Name, keySuffix(inst.Key))})
	systems := make([]string, 0, len(inst.Statuses))
	for sys := range inst.Statuses {
		systems = append(systems, sys)
	}
	sort.Strings(systems)
	restore := inst.Name + " restore"
	for _, sys := range systems {
		fs := f.system(sys)
		ov := fs.Overlay
		if ov == nil {
			continue
		}
		if latest := fd.covering(sys); latest != nil {
			if !ov.Released {
				w := why
				w.Rule = latest.Name
				fs.Target, fs.Cause = latest.Statuses[sys], w
				fd.note(decided{sys, latest.Statuses[sys], latest.Name})
			}
			continue
		}
		fs.Overlay = nil
		switch {
		case ov.Released:
			fd.record(Step{Kind: StepRestore, System: sys, Rule: restore, Cause: why.Text,
				Summary: fmt.Sprintf("%s keeps %s: it was changed by hand during the activity", sys, m.statusByID(sys, fs.Target).Name)})
		case ov.Base == "":
			fd.record(Step{Kind: StepRestore, System: sys, Rule: restore, Cause: why.Text,
				Summary: fmt.Sprintf("%s had no known status before the activity; nothing to restore", sys)})
		default:
			w := why
			w.Rule = restore
			fs.Target, fs.Cause = ov.Base, w
			fd.note(decided{sys, ov.Base, restore})
			name := m.statusByID(sys, ov.Base).Name
			fd.record(Step{Kind: StepRestore, System: sys, Status: name, Rule: restore, Cause: why.Text,
				Summary: fmt.Sprintf("%s goes back to %s, the status before the activity", sys, name)})
		}
	}
}

// historyLess orders changes: vendor time, then the master's last within one instant (it wins
// a conflict), then readings after the changes reported for their instant, then arrival.
func historyLess(pol *policy.Policy, a, b *change) bool {
	if !a.Event.At.Equal(b.Event.At) {
		return a.Event.At.Before(b.Event.At)
	}
	if pol != nil && pol.Master != "" {
		am, bm := a.Event.System == pol.Master, b.Event.System == pol.Master
		if am != bm {
			return bm
		}
	}
	if ar, br := a.Event.IsResync(), b.Event.IsResync(); ar != br {
		return br
	}
	return a.Seq < b.Seq
}

// refold recomputes the agent's fold from Base over History.
func (m *Machine) refold(st *agentState) {
	fd := folder{m: m, email: st.Email, pol: m.cfg.PolicyFor(st.Email), f: st.Base.clone()}
	for i := range st.History {
		fd.apply(&st.History[i])
	}
	st.fold = fd.f
}

// describe renders an event the way explain names a cause: "sf status_changed Lunch", and
// with the vendor's reason for events other than status changes ("sf logout
// (OmniSupervisorLogout)", "sf console_disconnected (closed)").
func (m *Machine) describe(ev presence.Event) string {
	s := ev.System + " " + string(ev.Type)
	if ev.Type != presence.Logout && ev.Status != "" {
		s += " " + m.statusByID(ev.System, ev.Status).Name
	}
	if r, _ := ev.Data["reason"].(string); r != "" && ev.Type != presence.StatusChanged {
		s += " (" + r + ")"
	}
	return s
}

func (m *Machine) describeSet(statuses map[string]string) string {
	parts := make([]string, 0, len(statuses))
	for sys, id := range statuses {
		parts = append(parts, sys+" → "+m.statusByID(sys, id).Name)
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "no system to cover"
	}
	return strings.Join(parts, ", ")
}
