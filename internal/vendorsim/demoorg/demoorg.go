// Package demoorg is the believable contact center every simulator's demo seed shares, so that
// the same agents (by email) exist in each simulated vendor and link up in the demo.
package demoorg

import (
	"fmt"
	"strings"
)

// Person is one demo agent.
type Person struct {
	// N is the agent's number, 1-based; simulators derive stable vendor ids from it.
	N         int
	FirstName string
	LastName  string
	Email     string
	// Team is "voice", "chat" or "blended".
	Team string
}

// Name is "First Last".
func (p Person) Name() string { return p.FirstName + " " + p.LastName }

// first and last name the demo agents: person i is first[i] last[i], one person per name.
var first = []string{"Ana", "Bo", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas",
	"Kofi", "Lena", "Mateo", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tara",
	"Umar", "Vera", "Wen", "Ximena", "Yusuf", "Zoe", "Amir", "Bianca", "Carlos", "Daria",
	"Emeka", "Freya", "Gustavo", "Hana", "Ivan", "Julia", "Kenji", "Leila", "Marco", "Nora",
	"Oscar", "Paula", "Rafael", "Sofia", "Tomas", "Ugo", "Valentina", "Will", "Yara", "Zainab"}

var last = []string{"Alvarez", "Becker", "Chen", "Diallo", "Evans", "Fischer", "Garcia", "Haddad",
	"Ivanova", "Jensen", "Kowalski", "Lopez", "Moreau", "Nakamura", "Okafor", "Patel", "Quist",
	"Rossi", "Silva", "Tanaka", "Ueda", "Varga", "Weber", "Xu", "Yilmaz"}

// Size is the number of demo agents.
const Size = 50

// Domain is the demo email domain.
const Domain = "example.com"

// Teams are the demo teams, in the order agents are dealt to them.
var Teams = []string{"voice", "chat", "blended"}

// People returns the demo agents, always the same ones in the same order, each a different
// person with one email (first name @ Domain). Ana (ana@example.com) is agent 1, matching the
// examples in CONTRACTS.md.
func People() []Person {
	out := make([]Person, Size)
	for i := range out {
		f := first[i]
		l := last[(i*7)%len(last)]
		out[i] = Person{N: i + 1, FirstName: f, LastName: l, Email: strings.ToLower(f) + "@" + Domain, Team: Teams[i%len(Teams)]}
	}
	return out
}

// Shift is what a demo agent does when the demo starts, the same in every simulated vendor.
type Shift int

// The shift states: most agents ready for work (each simulator picks the status that means so
// for the agent's team), some on a break, at lunch, or logged out.
const (
	Ready Shift = iota
	OnBreak
	AtMeal
	LoggedOut
)

// ShiftOf is what the agent at index i of People does when the demo starts.
func ShiftOf(i int) Shift {
	switch {
	case i%9 == 4:
		return OnBreak
	case i%11 == 6:
		return AtMeal
	case i%13 == 12:
		return LoggedOut
	}
	return Ready
}

// ShiftStatuses are one vendor's statuses for the shift states: Ready's by team, and those of
// OnBreak, AtMeal and LoggedOut. A person whose status is empty is left as they are.
type ShiftStatuses struct {
	Ready                  map[string]string
	Break, Meal, LoggedOut string
}

// StartShift gives every person, through set, the status of their shift (ShiftOf); an error
// names the person.
func StartShift(st ShiftStatuses, set func(email, status string) error) error {
	for i, p := range People() {
		status := st.Ready[p.Team]
		switch ShiftOf(i) {
		case OnBreak:
			status = st.Break
		case AtMeal:
			status = st.Meal
		case LoggedOut:
			status = st.LoggedOut
		}
		if status == "" {
			continue
		}
		if err := set(p.Email, status); err != nil {
			return fmt.Errorf("%s: %w", p.Email, err)
		}
	}
	return nil
}
