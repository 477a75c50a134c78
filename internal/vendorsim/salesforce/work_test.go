package salesforce

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
)

// TestAgentWork routes, accepts and closes work and checks the rows SOQL returns and the
// change events on the AgentWork channel.
func TestAgentWork(t *testing.T) {
	s, hs, clk := newTestServer(t, Config{})
	if _, err := s.RouteWork("ana@example.com", "sfdc_phone"); !errors.Is(err, ErrNoWork) {
		t.Fatalf("routing to a logged-out agent: %v", err)
	}
	if _, err := s.Login("ana@example.com", "AvailableforVoice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RouteWork("ana@example.com", "sfdc_livemessage"); !errors.Is(err, ErrNoWork) {
		t.Fatalf("routing on a channel the status lacks: %v", err)
	}
	if _, err := s.CloseWork("ana@example.com", "sfdc_phone"); !errors.Is(err, ErrNoWork) {
		t.Fatalf("closing without open work: %v", err)
	}
	clk.add(time.Second)
	w, err := s.AcceptWork("ana@example.com", "sfdc_phone")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(w.ID, "0Bz") || !strings.HasPrefix(w.WorkItemID, "0LQ") || w.Status != WorkOpened || w.Channel != "sfdc_phone" {
		t.Fatalf("accepted work: %+v", w)
	}
	clk.add(time.Minute)
	resp, err := http.Post(hs.URL+"/_sim/users/ana@example.com/work", "application/json",
		strings.NewReader(`{"action":"close","channel":"sfdc_phone"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var closed Work
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &closed) != nil || closed.ID != w.ID || closed.Status != WorkClosed {
		t.Fatalf("close over /_sim: %d %s", resp.StatusCode, body)
	}
	resp, err = http.Post(hs.URL+"/_sim/users/ana@example.com/work", "application/json", strings.NewReader(`{"action":"close","channel":"sfdc_phone"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("closing twice: %d", resp.StatusCode)
	}

	q, _ := ParseSOQL("SELECT Id, Status, ServiceChannel.DeveloperName, AcceptDateTime, CloseDateTime, CapacityPercentage FROM AgentWork WHERE UserId = '" + w.UserID + "'")
	res, aerr := s.org.query(q, latestVersion)
	if aerr != nil {
		t.Fatal(aerr)
	}
	b, _ := json.Marshal(res.records)
	want := `"Status":"Closed","ServiceChannel":{"attributes":{"type":"ServiceChannel"`
	if res.total != 1 || !strings.Contains(string(b), want) ||
		!strings.Contains(string(b), `"AcceptDateTime":"2026-03-02T09:00:01.001+0000","CloseDateTime":"2026-03-02T09:01:01.000+0000","CapacityPercentage":100`) {
		t.Fatalf("AgentWork rows: %s", b)
	}

	evs, _ := s.org.bus.after(0, func(e string) bool { return e == "AgentWork" }, 100)
	var got []string
	for _, e := range evs {
		if e.schemaID != awSchemaID {
			t.Fatalf("schema id %s", e.schemaID)
		}
		var ev AgentWorkChangeEvent
		if err := avro.Unmarshal(awSchema, e.payload, &ev); err != nil {
			t.Fatal(err)
		}
		line := ev.ChangeEventHeader.ChangeType + " " + *ev.Status
		if ev.UserID != nil && ev.ServiceChannelID != nil && ev.WorkItemID != nil {
			line += " ids"
		}
		if ev.AcceptDateTime != nil {
			line += " accepted"
		}
		if ev.CloseDateTime != nil {
			line += " closed"
		}
		got = append(got, line+" "+strings.Join(ev.ChangeEventHeader.ChangedFields, ","))
	}
	// The bitmaps mark fields 5 (LastModifiedDate), 6 (LastModifiedById), 10 (Status) and the
	// date-time each transition stamps: 12 (AcceptDateTime) or 13 (CloseDateTime).
	wantEvents := []string{"CREATE Assigned ids ", "UPDATE Opened accepted 0x1460", "UPDATE Closed closed 0x2460"}
	if strings.Join(got, "|") != strings.Join(wantEvents, "|") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantEvents, "\n"))
	}
}

// TestOrderByID checks that ORDER BY Id follows the case-sensitive key order (creation order),
// not the case-insensitive order of text fields.
func TestOrderByID(t *testing.T) {
	s, _, _ := newTestServer(t, Config{})
	q, _ := ParseSOQL("SELECT Id FROM User ORDER BY Id")
	res, aerr := s.org.query(q, latestVersion)
	if aerr != nil {
		t.Fatal(aerr)
	}
	users := s.org.rows("User")
	if res.total != len(users) || res.total < 40 {
		t.Fatalf("total %d of %d", res.total, len(users))
	}
	for i, r := range res.records {
		if r.vals["Id"] != users[i]["Id"] {
			t.Fatalf("row %d is %v, want %v (creation order)", i, r.vals["Id"], users[i]["Id"])
		}
	}
}
