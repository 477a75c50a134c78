package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the examples' expected.jsonl files")

// binary is the omnipresence command built once for these tests.
var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "omnipresence-cli-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "omnipresence")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// run executes the command and returns stdout, stderr and the exit code.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

// TestExamplesGolden runs simulate on every example and compares with its expected.jsonl,
// twice, to pin that the output is deterministic.
func TestExamplesGolden(t *testing.T) {
	dirs, err := filepath.Glob("../../examples/*/policy.yaml")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	for _, p := range dirs {
		dir := filepath.Dir(p)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			if _, stderr, code := run(t, "validate", "--config", p); code != 0 {
				t.Fatalf("validate exit %d: %s", code, stderr)
			}
			args := []string{"simulate", "--config", p, "--events", filepath.Join(dir, "events.jsonl")}
			out, stderr, code := run(t, args...)
			if code != 0 {
				t.Fatalf("simulate exit %d: %s", code, stderr)
			}
			again, _, _ := run(t, args...)
			if again != out {
				t.Fatal("simulate gave different output for the same input")
			}
			golden := filepath.Join(dir, "expected.jsonl")
			if *update {
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), out); diff != "" {
				t.Errorf("simulate output differs from %s (-want +got):\n%s", golden, diff)
			}
		})
	}
}

func TestValidateReportsEveryProblemWithPositions(t *testing.T) {
	out, stderr, code := run(t, "validate", "--config", "testdata/bad-policy.yaml")
	if code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if out != "" {
		t.Errorf("stdout should be empty on errors, got %q", out)
	}
	want := []string{
		`testdata/bad-policy.yaml:14:24: status "Lnch" is not in connect's catalog; did you mean "Lunch"?`,
		`testdata/bad-policy.yaml:18:24: "AfterCallWork" is a Connect system state and cannot be set`,
	}
	got := strings.Split(strings.TrimSpace(stderr), "\n")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stderr (-want +got):\n%s", diff)
	}
}

func TestValidateSummary(t *testing.T) {
	out, stderr, code := run(t, "validate", "--config", "../../examples/amazon-connect-cti/policy.yaml")
	if code != 0 || !strings.HasPrefix(out, "ok: 2 systems, 1 policies") || strings.Count(out, "\n") != 1 {
		t.Errorf("exit %d, stdout %q, stderr %q; want one summary line", code, out, stderr)
	}
}

func TestSimulateRejectsBadEventsWithLinesAndNoOutput(t *testing.T) {
	out, stderr, code := run(t, "simulate", "--config", "../../examples/genesys-cx-cloud-sync/policy.yaml",
		"--events", "testdata/bad-events.jsonl")
	if code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if out != "" {
		t.Errorf("no output expected on bad input, got %q", out)
	}
	for _, prefix := range []string{"testdata/bad-events.jsonl:2: unknown type \"nap\"", "testdata/bad-events.jsonl:3: malformed event", "testdata/bad-events.jsonl:4: unknown system \"zz\""} {
		if !strings.Contains(stderr, prefix) {
			t.Errorf("stderr lacks %q:\n%s", prefix, stderr)
		}
	}
	if strings.Contains(stderr, "bad-events.jsonl:1:") {
		t.Errorf("line 1 is valid but was reported:\n%s", stderr)
	}
}

func TestSimulateTableFormat(t *testing.T) {
	out, stderr, code := run(t, "simulate", "--config", "../../examples/genesys-communicate-call/policy.yaml",
		"--events", "../../examples/genesys-communicate-call/events.jsonl", "--format", "table", "--write-latency", "1s")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"2026-03-02T09:10:01Z", "FINAL AGENT", "writes 5, echoes 5"} {
		if !strings.Contains(out, want) {
			t.Errorf("table output lacks %q:\n%s", want, out)
		}
	}
}
