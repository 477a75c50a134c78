package bridge

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/presence"
)

func FuzzEvents(f *testing.F) {
	f.Add([]byte(goodEvent))
	f.Add([]byte(`{"id":"a6","type":"workload_changed","at":"2026-03-02T09:00:05Z","previousWorkload":0,"newWorkload":1.5,"configuredCapacity":5}`))
	f.Add([]byte(`{"id":"a4","type":"logout","at":"2026-03-02T09:00:03Z","commandId":"c-2"}`))
	f.Add([]byte(`{"id":"a5","type":"logout","at":"2026-03-02T09:00:03Z","reason":"DuplicateLogin"}`))
	f.Add([]byte(`{"id":"a7","type":"status_changed","at":"2026-03-02T09:00:03Z","statusId":"0N5000000000001","reason":"OmniSupervisorStatusChange","commandId":"c-3"}`))
	h := &Handler{opts: Options{System: "sf", Now: func() time.Time { return time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC) }}}
	f.Fuzz(func(t *testing.T, raw []byte) {
		evs, problems := h.parseEvents([]json.RawMessage{raw}, testUser)
		if len(problems) > 0 {
			if len(evs) != 0 {
				t.Fatal("a rejected event was also accepted")
			}
			return
		}
		if len(evs) != 1 {
			t.Fatalf("%d events from one", len(evs))
		}
		ev := evs[0]
		if !ev.Type.Valid() || ev.System != "sf" || ev.Agent != testUser || !strings.HasPrefix(ev.ID, "bridge:") || ev.At.IsZero() {
			t.Fatalf("accepted a bad event %+v", ev)
		}
		reason, _ := ev.Data["reason"].(string)
		ours := ev.Data["commandId"] != nil && ev.Type != presence.SessionMoved && !notOurs[reason]
		if (ev.Origin == presence.OriginSelf) != ours {
			t.Fatalf("origin %q does not follow commandId and reason in %+v", ev.Origin, ev)
		}
		if (ev.Type == presence.Logout || ev.Type == presence.SessionMoved) && ev.Status != "" {
			t.Fatalf("a logout with a status: %+v", ev)
		}
	})
}
