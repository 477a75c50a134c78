package sfid

import (
	"strings"
	"testing"
)

func TestCanonical(t *testing.T) {
	const id = "0015000000AbCdEAAV"
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{id[:15], id, true},
		{id, id, true},
		{strings.ToLower(id), id, true},   // the suffix restores the case
		{"0015000000AbCdEBAV", "", false}, // the suffix marks a digit as uppercase
		{"001000000000001", "001000000000001AAA", true},
		{"0N5Ab0000000Xyz", "0N5Ab0000000XyzKAE", true},
		{"00150000-0AbCdE", "", false},
		{"0015", "", false},
	} {
		got, ok := Canonical(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Canonical(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	if got := Normalize("not an id"); got != "not an id" {
		t.Errorf("Normalize changed a non-id: %q", got)
	}
	for in, want := range map[string]string{id: id[:15], strings.ToLower(id): id[:15], id[:15]: id[:15], "0": "0", "x": "x"} {
		if got := To15(in); got != want {
			t.Errorf("To15(%q) = %q, want %q", in, got, want)
		}
	}
	if !Is("005000000000001", "005") || Is("005000000000001", "00D") || Is("005-00", "005") {
		t.Error("Is disagrees with the key prefix")
	}
}
