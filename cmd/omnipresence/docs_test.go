package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/omnipresence/omnipresence/internal/store/postgres/pgtest"
)

// docFiles are the documents whose commands must run as written.
var docFiles = []string{"../../README.md", "../../docs/*.md", "../../examples/*/README.md"}

// block is one fenced block of a document.
type block struct {
	lang string
	line int
	text string
}

var fence = regexp.MustCompile("^```([A-Za-z0-9]*)\\s*$")

func blocks(t *testing.T, path string) []block {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []block
	var cur *block
	for i, l := range strings.Split(string(b), "\n") {
		if m := fence.FindStringSubmatch(l); m != nil {
			if cur == nil {
				cur = &block{lang: m[1], line: i + 1}
				continue
			}
			out = append(out, *cur)
			cur = nil
			continue
		}
		if cur != nil {
			cur.text += l + "\n"
		}
	}
	return out
}

// TestDocsYAMLBlocksValidate parses every YAML block of the README and the docs, and validates
// every one that is a whole policy (it says "version: 1").
func TestDocsYAMLBlocksValidate(t *testing.T) {
	n := 0
	for _, path := range docPaths(t) {
		for _, b := range blocks(t, path) {
			if b.lang != "yaml" {
				continue
			}
			n++
			if err := parseAll(b.text); err != nil {
				t.Errorf("%s:%d: the YAML block does not parse: %v", path, b.line, err)
				continue
			}
			if !strings.Contains(b.text, "version: 1") {
				continue
			}
			f := filepath.Join(t.TempDir(), "policy.yaml")
			if err := os.WriteFile(f, []byte(b.text), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, stderr, code := run(t, "validate", "--config", f); code != 0 {
				t.Errorf("%s:%d: the policy does not validate:\n%s", path, b.line, stderr)
			}
		}
	}
	if n == 0 {
		t.Fatal("no YAML blocks found")
	}
}

// TestDocsShellBlocksRun runs, document by document and in order, every omnipresence command of
// the shell blocks of the README and the docs, as written (`go run ./cmd/omnipresence` is the
// binary these tests built), from a folder where the repository's examples are at hand, with the
// variables the blocks export. A command that runs until interrupted (demo, serve, sim) must print
// its JSON line (serve: and become ready); one started with & keeps running until the document
// ends, the others are then stopped. Other commands must exit 0. Lines that are not omnipresence
// commands (go, curl) are listed in the log, not run.
func TestDocsShellBlocksRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the documented commands, servers included")
	}
	bin := t.TempDir()
	if err := os.Symlink(binary, filepath.Join(bin, "omnipresence")); err != nil {
		t.Fatal(err)
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, path := range docPaths(t) {
		t.Run(strings.TrimPrefix(path, "../../"), func(t *testing.T) {
			work := t.TempDir()
			if err := os.Symlink(filepath.Join(repo, "examples"), filepath.Join(work, "examples")); err != nil {
				t.Fatal(err)
			}
			env := append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
			var background []*exec.Cmd
			schemas := map[string]string{}
			defer func() {
				for _, c := range background {
					stop(c)
				}
			}()
			for _, b := range blocks(t, path) {
				if b.lang != "sh" {
					continue
				}
				for _, cmdline := range commands(b.text) {
					line := strings.TrimSpace(cmdline)
					if rest, ok := strings.CutPrefix(line, "export "); ok {
						env = append(env, strings.Fields(rest)...)
						continue
					}
					line = strings.Replace(line, "go run ./cmd/omnipresence", "omnipresence", 1)
					if !strings.HasPrefix(line, "omnipresence ") {
						t.Logf("%s:%d: not run: %s", path, b.line, line)
						continue
					}
					if strings.Contains(line, "postgres://") && !reachable("127.0.0.1:5432") {
						t.Logf("%s:%d: not run, PostgreSQL is not reachable at 127.0.0.1:5432: %s", path, b.line, line)
						continue
					}
					if strings.Contains(line, "postgres://") {
						// A documented store URL gets a schema of its own, so rows another
						// run left in the shared database never meet this one; the same URL
						// keeps its schema through the document (replicas share it).
						line = postgresURL.ReplaceAllStringFunc(line, func(u string) string {
							if schemas[u] == "" {
								schemas[u] = pgtest.FreshSchema(t)
							}
							return schemas[u]
						})
					}
					ran++
					bg := strings.HasSuffix(line, "&")
					line = strings.TrimSpace(strings.TrimSuffix(line, "&"))
					sub := strings.Fields(line)[1]
					if sub == "demo" || sub == "serve" || sub == "sim" {
						c := startDocumented(t, path, b.line, work, env, line)
						if bg || sub == "sim" {
							background = append(background, c)
						} else {
							stop(c)
						}
						continue
					}
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
					c := exec.CommandContext(ctx, "bash", "-c", line)
					c.Dir, c.Env = work, env
					out, err := c.CombinedOutput()
					cancel()
					if err != nil {
						t.Errorf("%s:%d: %s\nfailed: %v\n%s", path, b.line, line, err, out)
					}
				}
			}
		})
	}
	if ran == 0 {
		t.Fatal("no documented command was run")
	}
}

// postgresURL matches a PostgreSQL URL in a documented command line.
var postgresURL = regexp.MustCompile(`postgres://[^'"\s]+`)

// startDocumented starts a long-running command and waits for its JSON line; for serve, also
// for /readyz.
func startDocumented(t *testing.T, path string, line int, dir string, env []string, cmdline string) *exec.Cmd {
	t.Helper()
	c := exec.Command("bash", "-c", "exec "+cmdline)
	c.Dir, c.Env = dir, env
	stdout, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		got <- l
	}()
	var first string
	select {
	case first = <-got:
	case <-time.After(90 * time.Second):
	}
	var info map[string]any
	if err := json.Unmarshal([]byte(first), &info); err != nil {
		stop(c)
		t.Fatalf("%s:%d: %s printed no JSON line (%q)\n%s", path, line, cmdline, first, stderr.String())
	}
	if url, ok := info["url"].(string); ok && strings.Contains(cmdline, " serve ") {
		deadline := time.Now().Add(60 * time.Second)
		for {
			res, err := http.Get(url + "/readyz")
			if err == nil {
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				stop(c)
				t.Fatalf("%s:%d: %s never became ready\n%s", path, line, cmdline, stderr.String())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return c
}

func stop(c *exec.Cmd) {
	_ = c.Process.Signal(syscall.SIGINT)
	done := make(chan struct{})
	go func() { _ = c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = c.Process.Kill()
		<-done
	}
}

// commands splits a shell block into command lines: continuations joined, comments dropped.
func commands(text string) []string {
	var out []string
	cur := ""
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") && cur == "" {
			continue
		}
		if i := strings.Index(l, "  #"); i >= 0 {
			l = l[:i]
		}
		if strings.HasSuffix(l, "\\") {
			cur += strings.TrimSuffix(l, "\\") + " "
			continue
		}
		cur += l
		if strings.TrimSpace(cur) != "" {
			out = append(out, strings.Join(strings.Fields(cur), " "))
		}
		cur = ""
	}
	return out
}

func docPaths(t *testing.T) []string {
	var out []string
	for _, g := range docFiles {
		m, err := filepath.Glob(g)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m...)
	}
	if len(out) == 0 {
		t.Fatal(fmt.Errorf("no documents found"))
	}
	return out
}

// parseAll parses every document of a YAML stream (alternatives are shown as documents).
func parseAll(text string) error {
	dec := yaml.NewDecoder(strings.NewReader(text))
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func reachable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
