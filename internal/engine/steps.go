package engine

// StepKind names what one step of an agent's decision chain records. The kinds are part of the
// explain API (JSON "kind") and of the admin console; add kinds, don't rename them.
type StepKind string

// The step kinds, in the order a change usually meets them.
const (
	// StepEvent is a change evaluated under the policy; its details list every map, rule and
	// activity looked at.
	StepEvent StepKind = "event"
	// StepUnmapped is a change no map, rule or activity had an answer for: no change.
	StepUnmapped StepKind = "unmapped"
	// StepEcho is an event recognised as the echo of one of our writes; it is not evaluated.
	StepEcho StepKind = "echo"
	// StepReclassified is an event first taken for the echo of our write that proved to be a
	// person's change; it is evaluated at its own time.
	StepReclassified StepKind = "reclassified"
	// StepUnchanged is an event reporting the status its system already showed: no change.
	StepUnchanged StepKind = "unchanged"
	// StepLate is a change that arrived after newer ones; it is placed at its own time.
	StepLate StepKind = "late"
	// StepMissed is a reading taken at start or reconnect that shows a change no event told of,
	// dated by the vendor: a person's change at that time.
	StepMissed StepKind = "missed"
	// StepFutureDated is an event dated too far ahead of the clock; it is taken at its receive time.
	StepFutureDated StepKind = "future_dated"
	// StepUnknownSystem, StepUnknownAgent and StepUnknownStatus record events that name what the
	// policy does not know.
	StepUnknownSystem StepKind = "unknown_system"
	StepUnknownAgent  StepKind = "unknown_agent"
	StepUnknownStatus StepKind = "unknown_status"
	// StepNoAccount is an intent for a system where the agent has no account.
	StepNoAccount StepKind = "no_account"
	// StepIntent is a system's desired status changing, with the rule and the cause.
	StepIntent StepKind = "intent"
	// StepSuperseded is an intent a newer cause overrides.
	StepSuperseded StepKind = "superseded"
	// StepHeld is an intent kept for when an activity that covers its system ends.
	StepHeld StepKind = "held"
	// StepStateEnded is a system leaving a state only the vendor controls (after-call work, on
	// a contact): a write deferred by it goes out now.
	StepStateEnded StepKind = "state_ended"
	// StepActivityStart, StepActivityEnd, StepActivityReleased and StepRestore follow an
	// activity overlay; StepActivity notes an activity event that changes nothing.
	StepActivityStart    StepKind = "activity_start"
	StepActivityEnd      StepKind = "activity_end"
	StepActivityReleased StepKind = "activity_released"
	StepActivity         StepKind = "activity"
	StepRestore          StepKind = "restore"
	// StepCorrection is our write found to have landed over a newer change a person made; the
	// person's status is written back.
	StepCorrection StepKind = "correction"
	// StepWrite, StepWriteOK, StepDeferred, StepRetry and StepFailed follow one write to a vendor.
	StepWrite    StepKind = "write"
	StepWriteOK  StepKind = "write_ok"
	StepDeferred StepKind = "deferred"
	StepRetry    StepKind = "retry"
	StepFailed   StepKind = "failed"
	// StepRetryRequested is an admin asking, from the console, to write a failed or deferred
	// status again.
	StepRetryRequested StepKind = "retry_requested"
	// StepExtension and StepExtensionFailed record the policy extension webhook's answer.
	StepExtension       StepKind = "extension"
	StepExtensionFailed StepKind = "extension_failed"
)
