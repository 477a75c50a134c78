package server

import (
	"net/http"
	"time"

	"github.com/omnipresence/omnipresence/internal/engine"
	"github.com/omnipresence/omnipresence/internal/presence"
)

// historySteps is how many of an agent's newest steps the history is built from.
const historySteps = 1000

// showsStatus lists the explain step kinds after which the step's system shows the step's
// status: an observed change (mapped or not), a reading, the echo of a write, a write the vendor
// accepted.
var showsStatus = map[engine.StepKind]bool{
	engine.StepEvent: true, engine.StepUnmapped: true, engine.StepEcho: true, engine.StepUnchanged: true,
	engine.StepWriteOK: true, engine.StepStateEnded: true, engine.StepUnknownStatus: true,
}

// Segment is one stretch of time a system showed one status.
type Segment struct {
	System   string            `json:"system"`
	Status   string            `json:"status"`
	Category presence.Category `json:"category,omitempty"`
	From     time.Time         `json:"from"`
	// To is zero for the stretch that lasts until now.
	To time.Time `json:"to,omitzero"`
}

// historyResponse is the body of GET /api/v1/agents/{email}/history.
type historyResponse struct {
	Email    string       `json:"email"`
	Systems  []SystemInfo `json:"systems"`
	Segments []Segment    `json:"segments"`
	// From is the start of the recorded history shown; At is now.
	From time.Time `json:"from,omitzero"`
	At   time.Time `json:"at"`
}

func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	email := r.PathValue("email")
	_, ok, err := s.opts.Engine.Agent(r.Context(), email)
	if err != nil {
		s.engineError(w, r, err)
		return
	}
	if !ok {
		writeJSONError(w, http.StatusNotFound, "unknown agent", map[string]string{"email": email})
		return
	}
	steps, err := s.opts.Engine.Explain(r.Context(), email, historySteps)
	if err != nil {
		s.engineError(w, r, err)
		return
	}
	resp := historyResponse{Email: email, Systems: s.systemInfos(), Segments: s.segments(steps), At: time.Now().UTC()}
	if len(steps) > 0 {
		resp.From = steps[0].At
	}
	writeJSON(w, http.StatusOK, resp)
}

// segments turns steps (oldest first) into the stretches each system showed one status.
func (s *Server) segments(steps []engine.Step) []Segment {
	out := []Segment{}
	open := map[string]int{} // system → index of its open segment
	for _, st := range steps {
		if !showsStatus[st.Kind] || st.System == "" || st.Status == "" {
			continue
		}
		if i, ok := open[st.System]; ok {
			if out[i].Status == st.Status {
				continue
			}
			out[i].To = st.At
		}
		seg := Segment{System: st.System, Status: st.Status, From: st.At}
		if cat, ok := s.categoryByName(st.System, st.Status); ok {
			seg.Category = cat
		}
		open[st.System] = len(out)
		out = append(out, seg)
	}
	return out
}

func (s *Server) categoryByName(system, name string) (presence.Category, bool) {
	cfg := s.policy()
	if cfg == nil {
		return "", false
	}
	sys := cfg.Systems[system]
	if sys == nil || sys.Catalog == nil {
		return "", false
	}
	st, ok := sys.Catalog.Resolve(name)
	return st.Category, ok
}
