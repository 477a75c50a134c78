// Package settings holds a system's connection settings as written in a policy file and resolves
// the secrets inside them (${ENV} references and file: paths) only when a connector asks.
package settings

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"
)

// Settings are one system's connection keys (api_url, client_id, auth: {...}, …).
// Values are strings, numbers, booleans or nested Settings, as decoded from YAML.
type Settings map[string]any

// envRef matches ${NAME} references.
var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// Lookup resolves environment variables; tests replace it.
type Lookup func(string) (string, bool)

// EnvRefs returns the names of the environment variables referenced by s, sorted by appearance.
func EnvRefs(value string) []string {
	var out []string
	for _, m := range envRef.FindAllStringSubmatch(value, -1) {
		out = append(out, m[1])
	}
	return out
}

// Expand replaces ${NAME} references in value; a missing variable is an error naming it.
func Expand(value string, lookup Lookup) (string, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	var missing []string
	out := envRef.ReplaceAllStringFunc(value, func(ref string) string {
		name := ref[2 : len(ref)-1]
		v, ok := lookup(name)
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("environment variable %s is not set", strings.Join(missing, ", "))
	}
	return out, nil
}

// resolved is a value whose references were already resolved (see Resolve); it is used as is.
type resolved string

// String returns the key's value with ${ENV} expanded and a "file:" value replaced by the
// trimmed file content. A missing key returns "" and no error.
func (s Settings) String(key string) (string, error) {
	raw, ok := s[key]
	if !ok || raw == nil {
		return "", nil
	}
	if r, ok := raw.(resolved); ok {
		return string(r), nil
	}
	v, err := resolve(fmt.Sprint(raw))
	if err != nil {
		return "", fmt.Errorf("%s: %w", key, err)
	}
	return v, nil
}

func resolve(v string) (string, error) {
	v, err := Expand(v, nil)
	if err != nil {
		return "", err
	}
	if path, ok := strings.CutPrefix(v, "file:"); ok {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("reading secret file: %w", err)
		}
		v = strings.TrimSpace(string(b))
	}
	return v, nil
}

// Literal returns the key's value as written when it is known without resolving anything: it
// holds no ${ENV} reference and is not a file: path (or was resolved already). ok is false for
// a value only the environment or a file can tell, and for an absent key.
func (s Settings) Literal(key string) (v string, ok bool) {
	raw, present := s[key]
	if !present || raw == nil {
		return "", false
	}
	if r, ok := raw.(resolved); ok {
		return string(r), true
	}
	v = fmt.Sprint(raw)
	if envRef.MatchString(v) || strings.HasPrefix(v, "file:") {
		return v, false
	}
	return v, true
}

// Resolve returns a copy with every ${ENV} reference and file: path resolved, nested settings
// included; the first failure names its key. Reading a resolved value resolves nothing again.
func (s Settings) Resolve() (Settings, error) {
	out := Settings{}
	for k, raw := range s {
		if sub := s.Sub(k); sub != nil {
			r, err := sub.Resolve()
			if err != nil {
				return nil, fmt.Errorf("%s.%w", k, err)
			}
			out[k] = r
			continue
		}
		if raw == nil {
			continue
		}
		v, err := s.String(k)
		if err != nil {
			return nil, err
		}
		out[k] = resolved(v)
	}
	return out, nil
}

// StringOr returns String(key), or def when the key is absent.
func (s Settings) StringOr(key, def string) (string, error) {
	if _, ok := s[key]; !ok {
		return def, nil
	}
	return s.String(key)
}

// Duration parses the key as a Go duration ("500ms"), or returns def when absent.
func (s Settings) Duration(key string, def time.Duration) (time.Duration, error) {
	v, err := s.String(key)
	if err != nil || v == "" {
		return def, err
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", key, err)
	}
	return d, nil
}

// Sub returns the nested settings under key (for example salesforce auth), or nil.
func (s Settings) Sub(key string) Settings {
	switch v := s[key].(type) {
	case Settings:
		return v
	case map[string]any:
		return Settings(v)
	}
	return nil
}

// Redacted returns a copy safe to log: every value that is or references a secret is masked.
func (s Settings) Redacted() Settings {
	out := Settings{}
	for k, v := range s {
		switch t := v.(type) {
		case Settings:
			out[k] = t.Redacted()
		case map[string]any:
			out[k] = Settings(t).Redacted()
		default:
			str := fmt.Sprint(v)
			if isSecretKey(k) || strings.HasPrefix(str, "file:") || envRef.MatchString(str) {
				out[k] = "<redacted>"
			} else {
				out[k] = v
			}
		}
	}
	return out
}

func isSecretKey(k string) bool {
	k = strings.ToLower(k)
	return strings.Contains(k, "secret") || strings.Contains(k, "password") ||
		strings.Contains(k, "token") || strings.Contains(k, "private_key")
}
