package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/examples"
	"github.com/omnipresence/omnipresence/internal/connector/salesforce/bridgetoken"
)

func TestServeBridgeFlags(t *testing.T) {
	dir := t.TempDir()
	policyPath := filepath.Join(dir, "policy.yaml")
	// The flags are checked before the policy is read.
	if err := os.WriteFile(policyPath, []byte("version: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "bridge-secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"origin without certificate", []string{"--bridge-origin", "https://acme.lightning.force.com"}, "needs the bridge certificate (--bridge-cert-file)"},
		{"missing secret file", []string{"--bridge-secret-file", filepath.Join(dir, "none")}, "no such file"},
		{"missing certificate file", []string{"--bridge-cert-file", filepath.Join(dir, "none")}, "no such file"},
		{"private key as certificate", []string{"--bridge-cert-file", "../../bridge/salesforce/test/fixtures/test-key.pem"}, "give the service only the certificate"},
		{"not a certificate", []string{"--bridge-cert-file", secret}, "no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"serve", "--config", policyPath, "--store", "memory:", "--addr", "127.0.0.1:0"}, tt.args...)
			_, stderr, code := run(t, args...)
			if code != 2 || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr, tt.want)
			}
		})
	}
}

func TestSimSalesforceBridgeFlags(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const fixtures = "../../bridge/salesforce/test/fixtures/"
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--bridge-key-file", fixtures + "test-key.pem", "--bridge-secret-file", secret}, "not both"},
		{[]string{"--bridge-key-file", fixtures + "test-cert.pem"}, "no PEM private key"},
		{[]string{"--bridge-key-file", filepath.Join(dir, "none")}, "no such file"},
	} {
		_, stderr, code := run(t, append([]string{"sim", "salesforce", "--addr", "127.0.0.1:0"}, tt.args...)...)
		if code != 2 || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tt.args, code, stderr, tt.want)
		}
	}
}

// serve says at start what is missing or unsafe about the bridge.
func TestServeBridgeWarnings(t *testing.T) {
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policy, examples.DemoPolicy, 0o600); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The vendors are unreachable: serve starts all the same and says what it lacks.
	env := []string{"DEMO_SALESFORCE_URL=http://127.0.0.1:1", "DEMO_SALESFORCE_PUBSUB_URL=127.0.0.1:1",
		"DEMO_SALESFORCE_CLIENT_ID=x", "DEMO_SALESFORCE_CLIENT_SECRET=x",
		"DEMO_GENESYS_URL=http://127.0.0.1:1", "DEMO_GENESYS_CLIENT_ID=x", "DEMO_GENESYS_CLIENT_SECRET=x",
		"DEMO_AMAZONCONNECT_REGION=us-east-1", "DEMO_AMAZONCONNECT_INSTANCE_ID=x", "DEMO_AMAZONCONNECT_URL=http://127.0.0.1:1",
		"DEMO_AMAZONCONNECT_KINESIS_URL=http://127.0.0.1:1", "DEMO_AMAZONCONNECT_AGENT_EVENT_STREAM=x",
		"DEMO_AMAZONCONNECT_ACCESS_KEY_ID=x", "DEMO_AMAZONCONNECT_SECRET_ACCESS_KEY=x",
		"DEMO_CXONE_TENANT_ID=x", "DEMO_CXONE_AUTH_URL=http://127.0.0.1:1", "DEMO_CXONE_ACCESS_KEY_ID=x",
		"DEMO_CXONE_ACCESS_KEY_SECRET=x", "DEMO_CXONE_CLIENT_ID=x", "DEMO_CXONE_CLIENT_SECRET=x"}
	for _, tt := range []struct {
		name  string
		args  []string
		want  string
		never string
	}{
		{"no bridge", nil, "the Salesforce system has no Omni-Channel bridge", "DEVELOPMENT MODE"},
		{"development secret", []string{"--bridge-secret-file", secret}, "DEVELOPMENT MODE", "has no Omni-Channel bridge"},
		{"certificate", []string{"--bridge-cert-file", "../../bridge/salesforce/test/fixtures/test-cert.pem"}, "Omni-Channel bridge on", "DEVELOPMENT MODE"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary, append([]string{"serve", "--config", policy, "--store", "memory:",
				"--addr", "127.0.0.1:0"}, tt.args...)...)
			cmd.Env = append(os.Environ(), env...)
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				_ = cmd.Process.Signal(os.Interrupt)
				_ = cmd.Wait()
			}()
			// Read the log until the service says it serves; the warnings come before.
			var log strings.Builder
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				log.WriteString(sc.Text() + "\n")
				if strings.Contains(sc.Text(), "msg=serving") {
					break
				}
			}
			if !strings.Contains(log.String(), tt.want) || strings.Contains(log.String(), tt.never) {
				t.Errorf("log wants %q and not %q:\n%s", tt.want, tt.never, log.String())
			}
			go func() { _, _ = io.Copy(io.Discard, stderr) }()
		})
	}
}

// The simulator's console mints tokens with the key file as the org's Apex would, or with the
// development secret; serve verifies each with its counterpart.
func TestSimSalesforceMintsBridgeTokens(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte("  dev-s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const fixtures = "../../bridge/salesforce/test/fixtures/"
	certPEM, err := os.ReadFile(fixtures + "test-cert.pem")
	if err != nil {
		t.Fatal(err)
	}
	certs, err := bridgetoken.ParseCertificates(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	byCert, _ := bridgetoken.NewVerifier(certs, nil)
	bySecret, _ := bridgetoken.NewVerifier(nil, []byte("dev-s3cret"))
	for _, tt := range []struct {
		flag, file string
		verifier   *bridgetoken.Verifier
	}{
		{"--bridge-key-file", fixtures + "test-key.pem", byCert},
		{"--bridge-secret-file", secretFile, bySecret},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		var sf struct {
			URL string `json:"url"`
		}
		startLine(t, ctx, nil, &sf, "sim", "salesforce", "--addr", "127.0.0.1:0", tt.flag, tt.file)
		res, err := http.Get(sf.URL + "/console/ana@example.com/bridge-token")
		if err != nil {
			t.Fatal(err)
		}
		tok, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if c, err := tt.verifier.Verify(string(tok), time.Now()); err != nil || !strings.HasPrefix(c.Sub, "005") {
			t.Errorf("%s: token %q: %+v, %v", tt.flag, tok, c, err)
		}
		cancel()
	}
}
