package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
