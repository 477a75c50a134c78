package bridge

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/presence"
)

func FuzzVerify(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	f.Add(Claims{Sub: testUser, Org: testOrg, Iat: now.Unix(), Exp: now.Add(time.Minute).Unix()}.Sign(testSecret))
	f.Add("v1..")
	f.Add("v1.e30.")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := Verify(testSecret, tok, now)
		if err != nil {
			return
		}
		if c.Exp <= c.Iat || len(c.Sub) != 18 || !strings.HasPrefix(c.Sub, "005") {
			t.Fatalf("accepted bad claims %+v", c)
		}
		if again := c.Sign(testSecret); again == "" {
			t.Fatal("re-signing failed")
		}
	})
}

func FuzzEvents(f *testing.F) {
	f.Add([]byte(goodEvent))
	f.Add([]byte(`{"id":"a6","type":"workload_changed","at":"2026-03-02T09:00:05Z","previousWorkload":0,"newWorkload":1.5,"configuredCapacity":5}`))
	f.Add([]byte(`{"id":"a4","type":"logout","at":"2026-03-02T09:00:03Z","commandId":"c-2"}`))
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
		if (ev.Origin == presence.OriginSelf) != (ev.Data["commandId"] != nil) {
			t.Fatalf("origin %q does not follow commandId in %+v", ev.Origin, ev)
		}
		if ev.Type == presence.Logout && ev.Status != "" {
			t.Fatalf("a logout with a status: %+v", ev)
		}
	})
}
