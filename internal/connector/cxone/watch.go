package cxone

import (
	"context"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/pause"
	"github.com/omnipresence/omnipresence/internal/presence"
)

// agentStateJSON is one entry of the real-time agent states.
type agentStateJSON struct {
	AgentID        int    `json:"agentId"`
	AgentStateName string `json:"agentStateName"`
	OutStateID     int    `json:"outStateId"`
	StartDate      string `json:"startDate"`
	LastUpdateTime string `json:"lastUpdateTime"`
	ContactID      int64  `json:"contactId"`
	IsOutbound     bool   `json:"isOutbound"`
	MediaName      string `json:"mediaName"`
	SkillName      string `json:"skillName"`
	TeamName       string `json:"teamName"`
}

// statusID is the catalog id of the state: an unavailable code's id while Unavailable with a
// reason, else the ACD state's.
func (s agentStateJSON) statusID() string {
	if s.AgentStateName == stateUnavailable && s.OutStateID > 0 {
		return codeID(s.OutStateID)
	}
	return stateID(s.AgentStateName)
}

// seenState is what the watcher last reported of one agent.
type seenState struct {
	status  string
	start   string
	contact int64
}

// agentStates reads the real-time agent states at path (with its query) and the answer's
// lastPollTime.
func (c *Connector) agentStates(ctx context.Context, path string) ([]agentStateJSON, string, error) {
	var resp struct {
		LastPollTime string           `json:"lastPollTime"`
		AgentStates  []agentStateJSON `json:"agentStates"`
	}
	if err := c.read(ctx, path, &resp); err != nil {
		return nil, "", err
	}
	return resp.AgentStates, resp.LastPollTime, nil
}

func (c *Connector) checkpointName() string { return "cxone/" + c.o.System + "/updatedSince" }

// Watch polls the real-time agent states every PollInterval with updatedSince, carrying the
// answer's lastPollTime forward (and keeping it as the checkpoint once every change it
// brought is stored). A state change becomes status_changed dated by CXone's start time of
// the state, with that time as Version; a contact's start and end become
// conversation_started and conversation_ended.
//
// Polling was chosen over agent-session events: get-next-event serves one agent session, so
// watching a contact center that way takes one joined session and one open long-poll per
// agent (and joining logs nobody in: logged-out agents could not be watched at all), while one
// agent-states poll covers every agent whatever their state.
//
// The first poll of a system with no checkpoint reports nothing: it is the baseline, which the
// engine reads through CurrentStatuses.
func (c *Connector) Watch(ctx context.Context, emit connector.Emit) error {
	since, err := c.cps.Checkpoint(ctx, c.checkpointName())
	if err != nil {
		return err
	}
	var wait time.Duration // the first poll at once, the others PollInterval apart
	for {
		if !pause.For(ctx, wait) {
			return nil
		}
		path := "/agents/states"
		if since != "" {
			path += "?updatedSince=" + url.QueryEscape(since)
		}
		states, poll, err := c.agentStates(ctx, path)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		slices.SortStableFunc(states, func(a, b agentStateJSON) int {
			return parseTime(a.LastUpdateTime).Compare(parseTime(b.LastUpdateTime))
		})
		for _, s := range states {
			for _, ev := range c.observe(s, since == "") {
				ev.System = c.o.System
				if err := emit(ctx, ev); err != nil {
					c.forget(s.AgentID)
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
			}
		}
		if poll != "" && poll != since {
			since = poll
			if err := c.cps.SetCheckpoint(ctx, c.checkpointName(), since); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
		wait = c.o.PollInterval
	}
}

// forget drops what the watcher knew of an agent whose event was not stored, so that the next
// report of it is news again.
func (c *Connector) forget(agentID int) {
	c.mu.Lock()
	delete(c.seen, strconv.Itoa(agentID))
	c.mu.Unlock()
}

// observe records an agent's state and returns the events it means: nothing when it is what
// was last reported (a poll overlaps the one before) or when baseline is set.
func (c *Connector) observe(s agentStateJSON, baseline bool) []presence.Event {
	id := strconv.Itoa(s.AgentID)
	now := seenState{status: s.statusID(), start: s.StartDate}
	if isContact(s.AgentStateName) {
		now.contact = s.ContactID
	}
	c.mu.Lock()
	before, known := c.seen[id]
	c.seen[id] = now
	c.mu.Unlock()
	if baseline || known && before == now {
		return nil
	}
	at := parseTime(s.StartDate)
	var out []presence.Event
	if before.contact != 0 && before.contact != now.contact {
		out = append(out, presence.Event{ID: "contact-end:" + strconv.FormatInt(before.contact, 10), Agent: id,
			Type: presence.ConversationEnded, At: at,
			Data: map[string]any{"contactId": strconv.FormatInt(before.contact, 10)}})
	}
	if now.contact != 0 && now.contact != before.contact {
		dir := "inbound"
		if s.IsOutbound {
			dir = "outbound"
		}
		out = append(out, presence.Event{ID: "contact-start:" + strconv.FormatInt(now.contact, 10), Agent: id,
			Type: presence.ConversationStarted, At: at,
			Data: map[string]any{"contactId": strconv.FormatInt(now.contact, 10), "direction": dir,
				"mediaName": s.MediaName, "skillName": s.SkillName, "state": s.AgentStateName}})
	}
	data := map[string]any{"state": s.AgentStateName}
	if s.OutStateID > 0 {
		data["outStateId"] = s.OutStateID
	}
	out = append(out, presence.Event{ID: "state:" + id + ":" + s.StartDate, Agent: id, Type: presence.StatusChanged,
		Status: now.status, At: at, Version: s.StartDate, Data: data})
	return out
}
