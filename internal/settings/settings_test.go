package settings

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExpand(t *testing.T) {
	env := map[string]string{"A": "1", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	tests := []struct{ in, want, err string }{
		{"plain", "plain", ""},
		{"${A}-${A}", "1-1", ""},
		{"x${EMPTY}y", "xy", ""},
		{"${MISSING} and ${ALSO}", "", "MISSING, ALSO"},
		{"$A is not a reference", "$A is not a reference", ""},
	}
	for _, tt := range tests {
		got, err := Expand(tt.in, lookup)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Expand(%q) error = %v, want one naming %s", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Expand(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestStringResolvesEnvAndFiles(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OMNI_TEST_DIR", dir)
	s := Settings{"file": "file:${OMNI_TEST_DIR}/secret", "n": 5, "d": "250ms", "auth": map[string]any{"flow": "jwt"}}
	if v, err := s.String("file"); err != nil || v != "s3cret" {
		t.Errorf("file secret = %q, %v", v, err)
	}
	if v, err := s.String("n"); err != nil || v != "5" {
		t.Errorf("number = %q, %v", v, err)
	}
	if v, err := s.StringOr("absent", "def"); err != nil || v != "def" {
		t.Errorf("default = %q, %v", v, err)
	}
	if d, err := s.Duration("d", time.Second); err != nil || d != 250*time.Millisecond {
		t.Errorf("duration = %v, %v", d, err)
	}
	if v, _ := s.Sub("auth").String("flow"); v != "jwt" {
		t.Errorf("nested = %q", v)
	}
	if _, err := (Settings{"f": "file:" + filepath.Join(dir, "none")}).String("f"); err == nil {
		t.Error("a missing secret file must be an error")
	}
}

func TestRedacted(t *testing.T) {
	s := Settings{"client_id": "id", "client_secret": "plain-secret", "api_url": "https://x",
		"token": "${TOKEN}", "key": "file:/k", "auth": map[string]any{"private_key_file": "/k.pem", "flow": "jwt"}}
	r := s.Redacted()
	for _, k := range []string{"client_secret", "token", "key"} {
		if r[k] != "<redacted>" {
			t.Errorf("%s not redacted: %v", k, r[k])
		}
	}
	if r["client_id"] != "id" || r["api_url"] != "https://x" {
		t.Errorf("plain values should stay: %v", r)
	}
	if a := r.Sub("auth"); a["private_key_file"] != "<redacted>" || a["flow"] != "jwt" {
		t.Errorf("nested = %v", a)
	}
}

func TestResolveOnce(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	// A secret whose text looks like a reference must come out as written.
	if err := os.WriteFile(secret, []byte("p${ASS}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("OMNI_TEST_SECRET_FILE", secret)
	t.Setenv("OMNI_TEST_ID", "id-${HOME}")
	s := Settings{"secret": "file:${OMNI_TEST_SECRET_FILE}", "id": "${OMNI_TEST_ID}", "auth": map[string]any{"flow": "jwt"}}
	if _, ok := s.Literal("secret"); ok {
		t.Error("a file: reference is not a literal")
	}
	r, err := s.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"secret": "p${ASS}", "id": "id-${HOME}"} {
		if v, err := r.String(key); err != nil || v != want {
			t.Errorf("%s = %q, %v; want %q", key, v, err, want)
		}
		if v, ok := r.Literal(key); !ok || v != want {
			t.Errorf("Literal(%s) = %q, %v; want %q", key, v, ok, want)
		}
	}
	if v, _ := r.Sub("auth").String("flow"); v != "jwt" {
		t.Errorf("nested = %q", v)
	}
	if _, err := (Settings{"a": map[string]any{"b": "${OMNI_TEST_UNSET}"}}).Resolve(); err == nil || !strings.Contains(err.Error(), "a.b") {
		t.Errorf("error %v, want it to name a.b", err)
	}
}
