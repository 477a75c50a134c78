package demoorg

import (
	"errors"
	"testing"
)

// TestOnePersonPerAgent pins that every demo agent is a different person with one email.
func TestOnePersonPerAgent(t *testing.T) {
	people := People()
	if len(people) != Size {
		t.Fatalf("%d people, want %d", len(people), Size)
	}
	emails, names := map[string]bool{}, map[string]bool{}
	for _, p := range people {
		if emails[p.Email] || names[p.Name()] {
			t.Errorf("%s (%s) appears twice", p.Name(), p.Email)
		}
		emails[p.Email], names[p.Name()] = true, true
	}
	if people[0].Email != "ana@example.com" {
		t.Errorf("agent 1 is %s, want ana@example.com", people[0].Email)
	}
}

// TestStartShift pins that every person gets their shift's status, those with none are left
// alone, and the first failure stops it naming the person.
func TestStartShift(t *testing.T) {
	st := ShiftStatuses{Ready: map[string]string{"voice": "V", "chat": "C", "blended": "B"}, Break: "Br", Meal: "M"}
	got := map[string]string{}
	if err := StartShift(st, func(email, status string) error { got[email] = status; return nil }); err != nil {
		t.Fatal(err)
	}
	for i, p := range People() {
		want := map[Shift]string{Ready: st.Ready[p.Team], OnBreak: "Br", AtMeal: "M", LoggedOut: ""}[ShiftOf(i)]
		if s, ok := got[p.Email]; s != want || ok != (want != "") {
			t.Errorf("%s (%v): got %q (set %v), want %q", p.Email, ShiftOf(i), s, ok, want)
		}
	}
	err := StartShift(st, func(email, _ string) error { return errors.New("refused") })
	if err == nil || err.Error() != "ana@example.com: refused" {
		t.Errorf("failure: %v", err)
	}
}
