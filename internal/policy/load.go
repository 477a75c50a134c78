package policy

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxFileSize bounds one policy file; policies are small, and a huge file is a mistake.
const maxFileSize = 4 << 20

// Load reads a policy file, or every *.yaml and *.yml file of a folder (sorted by name, merged),
// validates and compiles it. On any problem it returns Diagnostics holding every problem found,
// sorted by file, line and column.
func Load(path string, opts Options) (*Config, error) {
	l := &loader{opts: opts, statusNodes: map[string][]placed{}, accountNodes: map[string][]placed{}}
	files, err := policyFiles(path)
	if err != nil {
		return nil, Diagnostics{{File: path, Message: err.Error()}}
	}
	var docs []fileDoc
	for _, f := range files {
		if doc := l.parseFile(f); doc != nil {
			docs = append(docs, fileDoc{file: f, root: doc})
		}
	}
	cfg := l.build(files, docs)
	if len(l.diags) > 0 {
		return nil, l.sorted()
	}
	return cfg, nil
}

// policyFiles lists the files a path names: the file itself, or a folder's YAML files sorted.
func policyFiles(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, errors.New("no such policy file or folder")
		}
		return nil, fmt.Errorf("cannot read the policy: %w", errors.Unwrap(err))
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read policy folder: %w", err)
	}
	var files []string
	for _, e := range entries {
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if !e.IsDir() && (ext == ".yaml" || ext == ".yml") {
			files = append(files, filepath.Join(path, e.Name()))
		}
	}
	sort.Strings(files)
	if len(files) == 0 {
		return nil, errors.New("folder holds no *.yaml or *.yml policy files")
	}
	return files, nil
}

type fileDoc struct {
	file string
	root *yaml.Node
}

// loader collects diagnostics while it walks the YAML nodes of the policy files.
type loader struct {
	opts  Options
	file  string
	diags Diagnostics
	// Where inline statuses and accounts (by system) and directory agents are, for the checks
	// against the vendors (Options.Remote).
	statusNodes, accountNodes map[string][]placed
	agentNodes                []placed
	// remote is what Options.Remote answered, by system.
	remote map[string]Remote
}

// placed is a node and the file it is in.
type placed struct {
	file string
	node *yaml.Node
	// what is the status id, account id or email the node holds.
	what string
}

func (l *loader) errf(n *yaml.Node, format string, args ...any) {
	line, col := 1, 1
	if n != nil && n.Line > 0 {
		line, col = n.Line, n.Column
	}
	l.errAt(line, col, format, args...)
}

func (l *loader) errAt(line, col int, format string, args ...any) {
	l.diags = append(l.diags, Diagnostic{File: l.file, Line: line, Col: col, Message: fmt.Sprintf(format, args...)})
}

// sorted returns the diagnostics ordered by file, line and column, without exact repeats.
func (l *loader) sorted() Diagnostics {
	ds := append(Diagnostics(nil), l.diags...)
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	out := ds[:0]
	for i, d := range ds {
		if i > 0 && d == ds[i-1] {
			continue
		}
		out = append(out, d)
	}
	return out
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseFile reads one file into its document's root node, or reports why it cannot.
func (l *loader) parseFile(file string) *yaml.Node {
	l.file = file
	f, err := os.Open(file)
	if err != nil {
		l.errAt(0, 0, "cannot read the policy file: %v", errors.Unwrap(err))
		return nil
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		l.errAt(0, 0, "cannot read the policy file: %v", err)
		return nil
	}
	if len(data) > maxFileSize {
		l.errAt(1, 1, "policy file is larger than %d MiB", maxFileSize>>20)
		return nil
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			l.errAt(1, 1, "policy file is empty; it needs at least \"version: 1\"")
			return nil
		}
		l.yamlError(err)
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		l.errf(&extra, "a policy file holds one YAML document; move this one to its own file")
	} else if !errors.Is(err, io.EOF) {
		l.yamlError(err)
		return nil
	}
	if len(doc.Content) == 0 {
		l.errAt(1, 1, "policy file is empty; it needs at least \"version: 1\"")
		return nil
	}
	return doc.Content[0]
}

// yamlError turns a YAML syntax error into positioned diagnostics.
func (l *loader) yamlError(err error) {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		l.errAt(line, 1, "invalid YAML: %s", m[2])
		return
	}
	l.errAt(1, 1, "invalid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
}

// maxAliasDepth bounds alias and merge-key chains.
const maxAliasDepth = 16

// deref follows aliases to the node they name.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < maxAliasDepth; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.AliasNode {
		return nil
	}
	return n
}

// entry is one key of a mapping with its value.
type entry struct {
	key string
	kn  *yaml.Node
	val *yaml.Node
}

// object is a checked mapping: its entries in order, looked up by key.
type object struct {
	node    *yaml.Node
	entries []*entry
}

func (o *object) get(key string) *entry {
	if o == nil {
		return nil
	}
	for _, e := range o.entries {
		if e.key == key {
			return e
		}
	}
	return nil
}

// val returns the value node of key, or nil when absent.
func (o *object) val(key string) *yaml.Node {
	if e := o.get(key); e != nil {
		return e.val
	}
	return nil
}

// kindName names a YAML node kind for a type error.
func kindName(n *yaml.Node) string {
	switch {
	case n == nil:
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.ScalarNode && n.Tag == "!!null":
		return "nothing"
	case n.Kind == yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "an unsupported YAML node"
}

// mapping checks n is a mapping with string keys, reports duplicate keys and keys outside
// known (with a suggestion), and returns its entries. It returns nil when n is not a mapping.
func (l *loader) mapping(n *yaml.Node, what string, known []string) *object {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		l.errf(n, "%s must be a mapping, got %s", what, kindName(n))
		return nil
	}
	o := &object{node: n}
	l.collect(o, n, what, 0)
	if known != nil {
		for _, e := range o.entries {
			if !contains(known, e.key) {
				l.errf(e.kn, "unknown key %q in %s%s", e.key, what, hint(e.key, known))
			}
		}
	}
	return o
}

func (l *loader) collect(o *object, n *yaml.Node, what string, depth int) {
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if k == nil || k.Kind != yaml.ScalarNode {
			l.errf(n.Content[i], "keys of %s must be plain strings", what)
			continue
		}
		if k.Tag == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if prev := o.get(k.Value); prev != nil {
			l.errf(k, "key %q appears twice in %s (first on line %d)", k.Value, what, prev.kn.Line)
			continue
		}
		o.entries = append(o.entries, &entry{key: k.Value, kn: k, val: v})
	}
	// Merge keys ("<<: *base") supply entries the mapping does not set itself.
	for _, m := range merges {
		if depth >= maxAliasDepth {
			l.errf(m, "merge keys nest too deep in %s", what)
			return
		}
		targets := []*yaml.Node{deref(m)}
		if t := targets[0]; t != nil && t.Kind == yaml.SequenceNode {
			targets = t.Content
		}
		for _, t := range targets {
			t = deref(t)
			if t == nil || t.Kind != yaml.MappingNode {
				l.errf(m, "a merge key in %s must name a mapping", what)
				continue
			}
			sub := &object{}
			l.collect(sub, t, what, depth+1)
			for _, e := range sub.entries {
				if o.get(e.key) == nil {
					o.entries = append(o.entries, e)
				}
			}
		}
	}
}

// list checks n is a sequence and returns its items (aliases resolved); a null is an empty list.
func (l *loader) list(n *yaml.Node, what string) ([]*yaml.Node, bool) {
	n = deref(n)
	if n != nil && n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, true
	}
	if n == nil || n.Kind != yaml.SequenceNode {
		l.errf(n, "%s must be a list, got %s", what, kindName(n))
		return nil, false
	}
	out := make([]*yaml.Node, 0, len(n.Content))
	for _, c := range n.Content {
		if d := deref(c); d != nil {
			out = append(out, d)
		} else {
			l.errf(c, "alias in %s nests too deep", what)
		}
	}
	return out, true
}

// str checks n is a non-empty scalar and returns its text.
func (l *loader) str(n *yaml.Node, what string) (string, bool) {
	d := deref(n)
	if d == nil || d.Kind != yaml.ScalarNode || d.Tag == "!!null" {
		l.errf(firstNonNil(d, n), "%s must be a string, got %s", what, kindName(d))
		return "", false
	}
	if strings.TrimSpace(d.Value) == "" {
		l.errf(d, "%s must not be empty", what)
		return "", false
	}
	return d.Value, true
}

// strList reads a list of non-empty strings.
func (l *loader) strList(n *yaml.Node, what string) []string {
	items, _ := l.list(n, what)
	var out []string
	for _, it := range items {
		if s, ok := l.str(it, what+" entry"); ok {
			out = append(out, s)
		}
	}
	return out
}

func firstNonNil(a, b *yaml.Node) *yaml.Node {
	if a != nil {
		return a
	}
	return b
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
