package policy

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/invalid")

// TestLoadInvalid loads every case under testdata/invalid (a file, or a folder of files) and
// compares the diagnostics with the case's .golden file.
func TestLoadInvalid(t *testing.T) {
	entries, err := os.ReadDir("testdata/invalid")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() && filepath.Ext(name) != ".yaml" {
			continue
		}
		n++
		path := filepath.Join("testdata/invalid", name)
		golden := strings.TrimSuffix(path, ".yaml") + ".golden"
		t.Run(name, func(t *testing.T) {
			cfg, err := Load(path, Options{})
			if err == nil {
				t.Fatalf("Load(%s) = %v, want diagnostics", path, cfg)
			}
			var ds Diagnostics
			if !errors.As(err, &ds) {
				t.Fatalf("Load(%s) error is %T, want Diagnostics", path, err)
			}
			got := err.Error() + "\n"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestLoadInvalid -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("diagnostics of %s differ from %s\ngot:\n%s\nwant:\n%s", path, golden, got, want)
			}
		})
	}
	if n == 0 {
		t.Fatal("no cases in testdata/invalid")
	}
}

func TestLoadMissingPath(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), Options{})
	var ds Diagnostics
	if !errors.As(err, &ds) || len(ds) != 1 || !strings.Contains(ds[0].Message, "no such policy file") {
		t.Fatalf("Load(missing) = %v, want one \"no such policy file\" diagnostic", err)
	}
	// A file that cannot be read has no position to point at: no fake 1:1.
	if got := ds[0].String(); strings.Contains(got, ":1:1:") || !strings.HasSuffix(got, "nope.yaml: no such policy file or folder") {
		t.Errorf("missing file reported as %q, want FILE: message without a position", got)
	}
	_, err = Load(t.TempDir(), Options{})
	if !errors.As(err, &ds) || len(ds) != 1 || !strings.Contains(ds[0].Message, "no *.yaml") {
		t.Fatalf("Load(empty folder) = %v, want one \"no *.yaml\" diagnostic", err)
	}
}

func loadValid(t testing.TB, path string, opts Options) *Config {
	t.Helper()
	cfg, err := Load(path, opts)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	return cfg
}
