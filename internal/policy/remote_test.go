package policy

import (
	"errors"
	"os"
	"testing"

	"github.com/omnipresence/omnipresence/internal/presence"
)

// TestRemoteChecks checks a policy against catalogs and accounts as the vendors hold them.
func TestRemoteChecks(t *testing.T) {
	remote := map[string]Remote{
		"sf": {
			Catalog: []presence.Status{
				{ID: "0N5000000000001", Name: "AvailableforVoice", Category: presence.CategoryAvailable, Settable: true},
				{ID: "0N5000000000002", Name: "Lunch", Category: presence.CategoryMeal, Settable: true},
				{ID: "0N5000000000003", Name: "Break", Category: presence.CategoryBreak, Settable: true},
				{ID: "0N5000000000004", Name: "Routing", Category: presence.CategorySystem},
			},
			Accounts: []presence.Account{{ID: "005A", Email: "ana@example.com"}, {ID: "005B", Email: "bob@example.com"}},
		},
		"gc": {
			Catalog: []presence.Status{
				{ID: "e08e", Name: "On Queue", Category: presence.CategoryOnQueue, Settable: true},
				{ID: "3fd9", Name: "Meal", Category: presence.CategoryMeal, Settable: true},
				{ID: "ccf3", Name: "Offline", Category: presence.CategoryOffline, Settable: true},
				{ID: "b0c1", Name: "Hold", Category: presence.CategoryBusy},
			},
			Accounts: []presence.Account{{ID: "u1", Email: "ana@example.com"}},
		},
	}
	const path = "testdata/remote/policy.yaml"
	_, err := Load(path, Options{Remote: func(sys *System) (Remote, error) { return remote[sys.Name], nil }})
	var ds Diagnostics
	if !errors.As(err, &ds) {
		t.Fatalf("Load = %v, want diagnostics", err)
	}
	got := err.Error() + "\n"
	golden := "testdata/remote/policy.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, _ := os.ReadFile(golden)
	if got != string(want) {
		t.Errorf("diagnostics differ from %s\ngot:\n%s\nwant:\n%s", golden, got, want)
	}

	// A vendor that cannot be reached is a problem of its system.
	_, err = Load(path, Options{Remote: func(sys *System) (Remote, error) {
		if sys.Name == "gc" {
			return Remote{}, errors.New("dial tcp: connection refused")
		}
		return Remote{}, nil
	}})
	want2 := "testdata/remote/policy.yaml:18:3: system gc: dial tcp: connection refused"
	if err == nil || err.Error() != want2 {
		t.Errorf("unreachable gc: %v, want %q", err, want2)
	}
}
