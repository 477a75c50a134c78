package engine

import "time"

// AgentView is an agent as the API shows it: per system, what it shows and what it should show.
type AgentView struct {
	Email string `json:"email"`
	// Policy is the name of the policy that applies, "" when none does.
	Policy  string                `json:"policy,omitempty"`
	Systems map[string]SystemView `json:"systems"`
	// Activities are the overlays in force (a non-ACD call, …).
	Activities []ActivityView `json:"activities,omitempty"`
	UpdatedAt  time.Time      `json:"updated_at,omitzero"`
}

// SystemView is one system of an agent.
type SystemView struct {
	Account string `json:"account,omitempty"`
	// Observed and Desired are status names; "" when unknown or when no policy has an opinion.
	Observed   string `json:"observed"`
	ObservedID string `json:"observed_id,omitempty"`
	// ObservedAt is the vendor's time of the latest observation of Observed.
	ObservedAt time.Time `json:"observed_at,omitzero"`
	Desired    string    `json:"desired"`
	DesiredID  string    `json:"desired_id,omitempty"`
	// Pending names the status of a write in flight or awaiting its echo.
	Pending string `json:"pending,omitempty"`
	// Deferred gives the reason a write waits for a system state to end.
	Deferred string `json:"deferred,omitempty"`
	// Failed is the last error of a write that used up its retries.
	Failed string `json:"failed,omitempty"`
	// InSync is true when nothing remains to be written.
	InSync bool `json:"in_sync"`
}

// ActivityView is one activity overlay in force.
type ActivityView struct {
	Name    string    `json:"name"`
	Key     string    `json:"key,omitempty"`
	Since   time.Time `json:"since,omitzero"`
	Systems []string  `json:"systems"`
}

// Step is one link of an agent's decision chain, as explain shows it.
type Step struct {
	Seq      int64     `json:"seq"`
	At       time.Time `json:"at,omitzero"`
	Kind     string    `json:"kind"`
	EventSeq int64     `json:"event_seq,omitempty"`
	System   string    `json:"system,omitempty"`
	Status   string    `json:"status,omitempty"`
	Rule     string    `json:"rule,omitempty"`
	Cause    string    `json:"cause,omitempty"`
	// Summary is one readable sentence.
	Summary string `json:"summary"`
	// Details are extra lines (rules looked at and why they did not match, vendor answers).
	Details []string `json:"details,omitempty"`
}

// Decision is one item of the live stream: a step of some agent's chain as it happens.
type Decision struct {
	Agent string `json:"agent"`
	Step
}
