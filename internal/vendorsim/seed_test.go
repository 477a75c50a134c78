package vendorsim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadSeed(t *testing.T) {
	type seed struct {
		Users []string `json:"users"`
	}
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	s, err := LoadSeed[seed](write("good.json", `{"users":["ana"]}`))
	if err != nil || len(s.Users) != 1 || s.Users[0] != "ana" {
		t.Errorf("good seed: %+v, %v", s, err)
	}
	bad := write("bad.json", `{"usres":["ana"]}`)
	if s, err := LoadSeed[seed](bad); err == nil || !strings.Contains(err.Error(), "seed "+bad) || s.Users != nil {
		t.Errorf("unknown field: %+v, %v; want an error naming the file", s, err)
	}
	if _, err := LoadSeed[seed](filepath.Join(dir, "absent.json")); !os.IsNotExist(err) {
		t.Errorf("absent file: %v", err)
	}
}

func TestPickSeed(t *testing.T) {
	type seed struct{ Name string }
	demo := func() seed { return seed{"demo"} }
	file := filepath.Join(t.TempDir(), "seed.json")
	if err := os.WriteFile(file, []byte(`{"Name":"file"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		seed *seed
		file string
		want string
	}{{nil, "", "demo"}, {nil, file, "file"}, {&seed{"given"}, file, "given"}, {&seed{"given"}, "", "given"}} {
		if got, err := PickSeed(c.seed, c.file, demo); err != nil || got.Name != c.want {
			t.Errorf("PickSeed(%v, %q) = %+v, %v; want %s", c.seed, c.file, got, err, c.want)
		}
	}
}
