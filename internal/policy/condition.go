package policy

import (
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/presence"
)

// condition is a compiled rule test: a structured comparison or a CEL program. A concrete
// type (not an interface) keeps the evaluation context on the stack.
type condition struct {
	cmp *compare
	cel *celTest
}

// eval reports whether the test holds and a line that explains the outcome.
func (c *condition) eval(x *evalCtx) (bool, string) {
	if c.cmp != nil {
		return c.cmp.eval(x)
	}
	return c.cel.eval(x)
}

// target is one "system: status" of a set, in file order.
type target struct {
	system string
	status presence.Status
}

// operandKind says where an operand's value comes from.
type operandKind uint8

const (
	literal operandKind = iota
	newState
	oldState
	// vendorOperand is one of the Operands of the system's vendor.
	vendorOperand
)

// value is an operand's value: text, and a number when the text is one.
type value struct {
	s   string
	n   float64
	num bool
	// text is false for a number whose text is not rendered yet.
	text bool
}

func textValue(s string) value {
	n, ok := parseNumber(s)
	return value{s: s, n: n, num: ok, text: true}
}

func numValue(n float64) value { return value{n: n, num: true} }

func (v value) String() string {
	if v.text {
		return v.s
	}
	return strconv.FormatFloat(v.n, 'f', -1, 64)
}

// parseNumber parses s as a number without allocating for text that is plainly not one.
func parseNumber(s string) (float64, bool) {
	if s == "" {
		return 0, false
	}
	switch c := s[0]; {
	case c >= '0' && c <= '9', c == '-', c == '+', c == '.':
	default:
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E') {
			return 0, false
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	return n, err == nil
}

// operand is one side of a structured test.
type operand struct {
	kind   operandKind
	system string
	// vendor is the vendor operand (kind vendorOperand).
	vendor *connector.Operand
	// written is the operand as written; lit is a literal's value.
	written string
	lit     value
}

func (o *operand) value(x *evalCtx) value {
	switch o.kind {
	case literal:
		return o.lit
	case newState, oldState:
		if o.system == x.in.Event.System {
			if o.kind == newState {
				return textValue(x.newS.Name)
			}
			return textValue(x.in.Old.Name)
		}
		return textValue(x.in.Current[o.system].Name)
	}
	text := o.vendor.Type == connector.Text
	if o.system != x.in.Event.System {
		if text {
			return value{text: true}
		}
		return numValue(0)
	}
	if text {
		return textValue(o.vendor.Text(x.in.Event))
	}
	return numValue(o.vendor.Number(x.in.Event))
}

// The comparison operators of structured tests.
var compareOps = []string{"eq", "ne", "gt", "ge", "lt", "le"}

// compare is a structured test {a, op, b}.
type compare struct {
	a, b operand
	op   string
}

func (t *compare) eval(x *evalCtx) (bool, string) {
	a, b := t.a.value(x), t.b.value(x)
	var c int
	if a.num && b.num {
		switch {
		case a.n < b.n:
			c = -1
		case a.n > b.n:
			c = 1
		}
	} else {
		c = strings.Compare(a.String(), b.String())
	}
	var ok bool
	switch t.op {
	case "eq":
		ok = c == 0
	case "ne":
		ok = c != 0
	case "gt":
		ok = c > 0
	case "ge":
		ok = c >= 0
	case "lt":
		ok = c < 0
	case "le":
		ok = c <= 0
	}
	return ok, "when: " + t.a.describe(a) + " " + t.op + " " + t.b.describe(b) + " is " + strconv.FormatBool(ok)
}

func (o *operand) describe(v value) string {
	if o.kind == literal {
		return o.written
	}
	return o.written + " (" + v.String() + ")"
}

// when compiles a rule's test: a structured {a, op, b} mapping or a CEL string.
func (c *compiler) when(n *yaml.Node, label string) (*condition, string, bool) {
	d := deref(n)
	if d != nil && d.Kind == yaml.ScalarNode && d.Tag != "!!null" {
		return c.celCondition(d, label)
	}
	what := "when of " + label
	o := c.mapping(n, what+" (a test {a, op, b} or a CEL expression)", testKeys)
	if o == nil {
		return nil, "", false
	}
	t := &compare{}
	ok := true
	for _, k := range testKeys {
		if o.val(k) == nil {
			c.errf(o.node, "%s has no %s", what, k)
			ok = false
		}
	}
	if !ok {
		return nil, "", false
	}
	var okA, okB bool
	t.a, okA = c.operand(o.val("a"), what)
	t.b, okB = c.operand(o.val("b"), what)
	if op, good := c.str(o.val("op"), "op of "+what); good {
		if !contains(compareOps, op) {
			c.errf(deref(o.val("op")), "unknown op %q in %s%s", op, what, hint(op, compareOps))
			ok = false
		}
		t.op = op
	} else {
		ok = false
	}
	if !okA || !okB || !ok {
		return nil, "", false
	}
	okA = c.stateLiteral(&t.a, &t.b, o.val("b"))
	okB = c.stateLiteral(&t.b, &t.a, o.val("a"))
	if !okA || !okB {
		return nil, "", false
	}
	return &condition{cmp: t}, t.a.written + " " + t.op + " " + t.b.written, true
}

// stateLiteral checks a literal compared with a state operand names a status of that
// system's catalog, and turns a status id into the name state operands carry.
func (c *compiler) stateLiteral(state, lit *operand, litNode *yaml.Node) bool {
	if lit.kind != literal || (state.kind != newState && state.kind != oldState) {
		return true
	}
	s := c.env.systems[state.system]
	if s.sys.Catalog == nil {
		return true
	}
	st, ok := c.status(s, deref(litNode), lit.written, false)
	if !ok {
		return false
	}
	lit.lit = textValue(st.Name)
	return true
}

// operand reads one side of a structured test.
func (c *compiler) operand(n *yaml.Node, what string) (operand, bool) {
	d := deref(n)
	if d == nil || d.Kind != yaml.ScalarNode || d.Tag == "!!null" {
		c.errf(firstNonNil(d, n), "operands of %s must be strings or numbers, got %s", what, kindName(d))
		return operand{}, false
	}
	s := d.Value
	sys, field, found := strings.Cut(s, ".")
	if !found {
		return operand{kind: literal, written: s, lit: textValue(s)}, true
	}
	si, known := c.env.systems[sys]
	isField := field == fieldNewState || field == fieldOldState || len(kindsWithOperand(field)) > 0
	if !known {
		if isField {
			c.errf(d, "operand %s names no configured system%s", s, hint(sys, c.cfg.SystemNames))
			return operand{}, false
		}
		return operand{kind: literal, written: s, lit: textValue(s)}, true
	}
	switch field {
	case fieldNewState:
		return operand{kind: newState, system: sys, written: s}, true
	case fieldOldState:
		return operand{kind: oldState, system: sys, written: s}, true
	}
	if op := si.operand(field); op != nil {
		return operand{kind: vendorOperand, system: sys, vendor: op, written: s}, true
	}
	if kinds := kindsWithOperand(field); len(kinds) > 0 {
		c.errf(d, "operand %s does not exist for a %s system; it exists for %s systems", s, si.kind, strings.Join(kinds, " and "))
		return operand{}, false
	}
	full := []string{sys + "." + fieldNewState, sys + "." + fieldOldState}
	for _, op := range si.vendor.Operands {
		full = append(full, sys+"."+op.Name)
	}
	c.errf(d, "operand %s does not exist%s", s, hint(s, full))
	return operand{}, false
}

// kindsWithOperand lists the registered kinds whose events offer the operand.
func kindsWithOperand(name string) []string {
	var out []string
	for _, k := range connector.Kinds() {
		v, _ := connector.Lookup(k)
		for _, op := range v.Operands {
			if op.Name == name {
				out = append(out, k)
			}
		}
	}
	return out
}

// The operators of activity match tests.
var matchOps = []string{"exists", "not_exists", "eq", "ne", "in"}

// matchTest is one compiled activity match test on the event's data.
type matchTest struct {
	path   string
	parts  []string
	op     string
	values []value
}

func (c *compiler) matchTests(n *yaml.Node, label string) ([]matchTest, bool) {
	items, ok := c.list(n, "match of "+label)
	var out []matchTest
	for _, it := range items {
		what := "match test of " + label
		o := c.mapping(it, what, matchKeys)
		if o == nil {
			ok = false
			continue
		}
		var t matchTest
		good := true
		if v := o.val("path"); v == nil {
			c.errf(o.node, "%s has no path; add path: <data field>", what)
			good = false
		} else if p, g := c.str(v, "path of "+what); g {
			t.path, t.parts = p, strings.Split(p, ".")
			for _, part := range t.parts {
				if part == "" {
					c.errf(deref(v), "path %q of %s has an empty segment", p, what)
					good = false
					break
				}
			}
		} else {
			good = false
		}
		if v := o.val("op"); v == nil {
			c.errf(o.node, "%s has no op; add op: %s", what, strings.Join(matchOps, " | "))
			good = false
		} else if op, g := c.str(v, "op of "+what); g && contains(matchOps, op) {
			t.op = op
		} else {
			if g {
				c.errf(deref(v), "unknown op %q in %s%s", op, what, hint(op, matchOps))
			}
			good = false
		}
		val, vals := o.get("value"), o.get("values")
		switch t.op {
		case "exists", "not_exists":
			for _, e := range []*entry{val, vals} {
				if e != nil {
					c.errf(e.kn, "op %s takes no %s; remove it", t.op, e.key)
					good = false
				}
			}
		case "eq", "ne":
			if vals != nil {
				c.errf(vals.kn, "op %s compares with one value; write value: instead of values:", t.op)
				good = false
			} else if val == nil {
				c.errf(o.node, "op %s needs value: <text or number>", t.op)
				good = false
			} else if v, g := c.scalar(val.val, "value of "+what); g {
				t.values = []value{v}
			} else {
				good = false
			}
		case "in":
			if val != nil {
				c.errf(val.kn, "op in compares with a list; write values: [...] instead of value:")
				good = false
			} else if vals == nil {
				c.errf(o.node, "op in needs values: [<text or number>, ...]")
				good = false
			} else {
				items, g := c.list(vals.val, "values of "+what)
				if g && len(items) == 0 {
					c.errf(vals.kn, "values of %s is empty", what)
					g = false
				}
				for _, item := range items {
					v, gi := c.scalar(item, "values entry of "+what)
					g = g && gi
					t.values = append(t.values, v)
				}
				good = good && g
			}
		}
		if good {
			out = append(out, t)
		} else {
			ok = false
		}
	}
	return out, ok
}

// scalar reads a value to compare with (it may be empty text).
func (c *compiler) scalar(n *yaml.Node, what string) (value, bool) {
	d := deref(n)
	if d == nil || d.Kind != yaml.ScalarNode || d.Tag == "!!null" {
		c.errf(firstNonNil(d, n), "%s must be text or a number, got %s", what, kindName(d))
		return value{}, false
	}
	return textValue(d.Value), true
}

// eval runs the test on an event's data.
func (t *matchTest) eval(ev *presence.Event) (bool, string) {
	v, found := dataValue(ev.Data, t.parts)
	switch t.op {
	case "exists":
		return found, "match: " + t.path + " exists is " + strconv.FormatBool(found)
	case "not_exists":
		if found {
			return false, "match: " + t.path + " not_exists is false (" + t.path + " is " + describeData(v) + ")"
		}
		return true, "match: " + t.path + " not_exists is true"
	}
	got, scalar := dataScalar(v)
	hit := false
	if found && scalar {
		for _, want := range t.values {
			if (got.num && want.num && got.n == want.n) || (!(got.num && want.num) && got.String() == want.String()) {
				hit = true
				break
			}
		}
	}
	ok := hit
	if t.op == "ne" {
		ok = !hit
	}
	shown := "absent"
	if found {
		shown = describeData(v)
	}
	return ok, "match: " + t.path + " " + t.op + " " + describeValues(t.values) + " is " + strconv.FormatBool(ok) +
		" (" + t.path + " is " + shown + ")"
}

func describeValues(vs []value) string {
	if len(vs) == 1 {
		return vs[0].String()
	}
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = v.String()
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// dataValue walks a dotted path into event data; null counts as absent.
func dataValue(data map[string]any, parts []string) (any, bool) {
	var cur any = data
	for _, p := range parts {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return cur, cur != nil
}

// dataScalar renders a data value for comparison; maps and lists are not scalars.
func dataScalar(v any) (value, bool) {
	switch t := v.(type) {
	case string:
		return textValue(t), true
	case bool:
		return value{s: strconv.FormatBool(t), text: true}, true
	case float64:
		return numValue(t), true
	case float32:
		return numValue(float64(t)), true
	case int:
		return numValue(float64(t)), true
	case int64:
		return numValue(float64(t)), true
	case int32:
		return numValue(float64(t)), true
	case uint64:
		return numValue(float64(t)), true
	case fmt.Stringer:
		return textValue(t.String()), true
	}
	return value{}, false
}

func describeData(v any) string {
	if s, ok := dataScalar(v); ok {
		if _, isStr := v.(string); isStr {
			return strconv.Quote(s.String())
		}
		return s.String()
	}
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	}
	return fmt.Sprintf("%T", v)
}
