package vendors

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/omnipresence/omnipresence/internal/connector"
)

// TestRegistered checks every vendor's registration is whole: a kind, a title, settings, and a
// simulator of the same kind when there is one.
func TestRegistered(t *testing.T) {
	kinds := connector.Kinds()
	if len(kinds) == 0 {
		t.Fatal("no vendor registered")
	}
	for _, k := range kinds {
		v, _ := connector.Lookup(k)
		if v.Title == "" || len(v.Settings) == 0 {
			t.Errorf("vendor %s: title %q, %d settings", k, v.Title, len(v.Settings))
		}
		if len(v.Catalog.SystemStates) > 0 && v.Catalog.SystemStatePhrase == "" {
			t.Errorf("vendor %s has system states but no phrase naming them", k)
		}
		for _, op := range v.Operands {
			if (op.Type == connector.Text) != (op.Text != nil) || (op.Type != connector.Text) != (op.Number != nil) {
				t.Errorf("vendor %s: operand %s of type %d reads its value with the wrong function", k, op.Name, op.Type)
			}
		}
	}
	for _, s := range Simulators() {
		if _, ok := connector.Lookup(s.Kind); !ok || s.Command == nil {
			t.Errorf("simulator %s has no vendor or no command", s.Kind)
		}
	}
}

// TestPolicyReferenceDocumentsEveryVendor checks docs/policy.md names every setting of every
// registered vendor in the vendor's row of the connection settings, and every system state.
func TestPolicyReferenceDocumentsEveryVendor(t *testing.T) {
	b, err := os.ReadFile("../../docs/policy.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	rows := map[string]string{}
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(line, "| `") {
			kind, _, _ := strings.Cut(strings.TrimPrefix(line, "| `"), "`")
			rows[kind] = line
		}
	}
	for _, k := range connector.Kinds() {
		v, _ := connector.Lookup(k)
		row, ok := rows[k]
		if !ok {
			t.Errorf("docs/policy.md has no connection settings row for kind %s", k)
			continue
		}
		var keys []string
		var walk func([]connector.Setting)
		walk = func(ss []connector.Setting) {
			for _, s := range ss {
				keys = append(keys, s.Key)
				walk(s.Keys)
			}
		}
		walk(v.Settings)
		for _, key := range keys {
			if !regexp.MustCompile(`(^|[^A-Za-z0-9_])` + key + `([^A-Za-z0-9_]|$)`).MatchString(row) {
				t.Errorf("docs/policy.md's row for %s does not name its setting %s", k, key)
			}
		}
		for _, s := range v.Catalog.SystemStates {
			if !strings.Contains(doc, "`"+s+"`") {
				t.Errorf("docs/policy.md does not name the %s system state %s", k, s)
			}
		}
	}
}
