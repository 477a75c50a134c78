package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// Event stream tuning: the subscription buffer, the interval of heartbeat comments (which keep
// proxies from closing an idle stream) and how long one write may block on a slow client before
// the stream is dropped.
const (
	streamBuffer       = 256
	streamHeartbeat    = 15 * time.Second
	streamWriteTimeout = 10 * time.Second
)

// events streams live decisions as Server-Sent Events ("event: decision", JSON data) with a
// comment heartbeat, until the client goes away, the engine ends the subscription or the
// server shuts down.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	decisions, cancel := s.opts.Engine.Subscribe(streamBuffer)
	defer cancel()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	write := func(b []byte) bool {
		// Deadlines are unsupported by some writers (tests, wrappers); the stream works without.
		if err := rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return false
		}
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write([]byte("retry: 3000\n: connected\n\n")) {
		return
	}
	tick := time.NewTicker(streamHeartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.streamsDone:
			return
		case <-tick.C:
			if !write([]byte(": heartbeat\n\n")) {
				return
			}
		case d, ok := <-decisions:
			if !ok {
				return
			}
			data, err := json.Marshal(d)
			if err != nil {
				s.log.ErrorContext(r.Context(), "encoding a decision failed", "agent", d.Agent, "err", err)
				continue
			}
			// json.Marshal output has no newlines, so one data line carries the whole event.
			if !write(append(append([]byte("event: decision\ndata: "), data...), '\n', '\n')) {
				return
			}
		}
	}
}
