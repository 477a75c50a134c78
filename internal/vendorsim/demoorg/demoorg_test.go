package demoorg

import "testing"

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
