package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestSystemdUnitVerifies runs systemd-analyze verify on deploy/systemd/omnipresence.service,
// with ExecStart pointed at the binary these tests built.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	unit, err := os.ReadFile("../../deploy/systemd/omnipresence.service")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "omnipresence.service")
	if err := os.WriteFile(path, bytes.ReplaceAll(unit, []byte("/usr/local/bin/omnipresence"), []byte(binary)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, want := range []string{"DynamicUser=yes", "NoNewPrivileges=yes", "ProtectSystem=strict", "CapabilityBoundingSet=\n", "--admin-token-file"} {
		if !bytes.Contains(unit, []byte(want)) {
			t.Errorf("unit lacks %q", strings.TrimSpace(want))
		}
	}
}

// TestKubernetesManifests checks deploy/kubernetes by the rules the cluster would apply and by
// what omnipresence needs: every document names its kind and a name, the Deployment's probes
// hit /healthz and /readyz on the served port, it runs non-root with a read-only root and no
// capabilities, every volume and secret it uses is among the manifests, and the policy in the
// ConfigMap passes validate. With kubectl installed, kustomize must build the folder too.
func TestKubernetesManifests(t *testing.T) {
	files, err := filepath.Glob("../../deploy/kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	objects := map[string]map[string]any{} // kind/name
	var deployment map[string]any
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := yaml.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		kind, _ := doc["kind"].(string)
		name, _ := dig(doc, "metadata", "name").(string)
		if doc["apiVersion"] == nil || kind == "" || name == "" {
			t.Errorf("%s: apiVersion, kind and metadata.name are required", f)
		}
		objects[kind+"/"+name] = doc
		if kind == "Deployment" {
			deployment = doc
		}
	}
	if deployment == nil {
		t.Fatal("no Deployment")
	}
	pod := dig(deployment, "spec", "template", "spec").(map[string]any)
	if dig(pod, "securityContext", "runAsNonRoot") != true {
		t.Error("the pod must run as non-root")
	}
	c := dig(pod, "containers").([]any)[0].(map[string]any)
	if dig(c, "securityContext", "readOnlyRootFilesystem") != true || dig(c, "securityContext", "allowPrivilegeEscalation") != false {
		t.Error("the container needs a read-only root and no privilege escalation")
	}
	if dig(c, "livenessProbe", "httpGet", "path") != "/healthz" || dig(c, "readinessProbe", "httpGet", "path") != "/readyz" {
		t.Error("liveness must probe /healthz and readiness /readyz")
	}
	args := strings.Join(toStrings(c["args"]), " ")
	if !strings.Contains(args, "--addr=0.0.0.0:8080") || dig(c, "ports").([]any)[0].(map[string]any)["containerPort"] != 8080 {
		t.Errorf("the served address and the container port differ: %s", args)
	}
	for _, v := range dig(pod, "volumes").([]any) {
		v := v.(map[string]any)
		if cm := dig(v, "configMap", "name"); cm != nil && objects["ConfigMap/"+cm.(string)] == nil {
			t.Errorf("volume %v names a missing ConfigMap %v", v["name"], cm)
		}
		if pvc := dig(v, "persistentVolumeClaim", "claimName"); pvc != nil && objects["PersistentVolumeClaim/"+pvc.(string)] == nil {
			t.Errorf("volume %v names a missing claim %v", v["name"], pvc)
		}
	}
	for _, e := range dig(c, "envFrom").([]any) {
		if s := dig(e.(map[string]any), "secretRef", "name"); s != nil && objects["Secret/"+s.(string)] == nil {
			t.Errorf("envFrom names a missing Secret %v", s)
		}
	}
	for _, cm := range objects {
		if cm["kind"] != "ConfigMap" {
			continue
		}
		policy, _ := dig(cm, "data", "policy.yaml").(string)
		path := filepath.Join(t.TempDir(), "policy.yaml")
		if err := os.WriteFile(path, []byte(policy), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, stderr, code := run(t, "validate", "--config", path); code != 0 {
			t.Errorf("the ConfigMap's policy does not validate: %s", stderr)
		}
	}
	if kubectl, err := exec.LookPath("kubectl"); err == nil {
		if out, err := exec.Command(kubectl, "kustomize", "../../deploy/kubernetes").CombinedOutput(); err != nil {
			t.Errorf("kubectl kustomize: %v\n%s", err, out)
		}
	}
}

// TestDockerfile checks the container recipe: a static build and a non-root, minimal base.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{"CGO_ENABLED=0", "FROM gcr.io/distroless/static", "USER nonroot", "-X main.version=", "./cmd/omnipresence"} {
		if !strings.Contains(s, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}

func dig(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}
