package policy

import (
	"fmt"
	"reflect"
	"sort"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/cost"
	celtypes "cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"
	"go.yaml.in/yaml/v3"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/presence"
)

// celCostLimit bounds both the estimated cost of an expression at load time and the actual
// cost of one evaluation.
const celCostLimit = 100_000

// celSizeLimit is the size assumed for strings, lists and maps when estimating cost.
const celSizeLimit = 1024

// eventVars is the CEL variable "event".
type eventVars struct {
	Type   string         `cel:"type"`
	System string         `cel:"system"`
	Status string         `cel:"status"`
	Data   map[string]any `cel:"data"`
}

// sysInfo is what evaluation needs to know about one configured system.
type sysInfo struct {
	name, kind string
	sys        *System
	vendor     *connector.Vendor
	// offline is the status a logout means.
	offline presence.Status
}

// operand returns the vendor operand called name, or nil.
func (s *sysInfo) operand(name string) *connector.Operand {
	for i := range s.vendor.Operands {
		if s.vendor.Operands[i].Name == name {
			return &s.vendor.Operands[i]
		}
	}
	return nil
}

// evalEnv is shared by every policy of a Config.
type evalEnv struct {
	systems map[string]*sysInfo
	names   []string
	cel     *cel.Env
}

// The fields every system's CEL variable has.
const (
	fieldNewState = "new_state"
	fieldOldState = "old_state"
)

func newEvalEnv(cfg *Config) (*evalEnv, error) {
	e := &evalEnv{systems: map[string]*sysInfo{}, names: cfg.SystemNames}
	types := &systemTypes{fields: map[string]map[string]*celtypes.Type{}}
	opts := []cel.EnvOption{types.option()}
	opts = append(opts,
		ext.NativeTypes(reflect.TypeFor[eventVars](), ext.ParseStructTags(true)),
		cel.CrossTypeNumericComparisons(true),
		cel.Variable("event", cel.ObjectType("policy.eventVars")))
	for _, name := range cfg.SystemNames {
		sys := cfg.Systems[name]
		si := &sysInfo{name: name, kind: sys.Kind, sys: sys, vendor: sys.Vendor, offline: presence.Status{Name: presence.OfflineName,
			Label: presence.OfflineName, Category: presence.CategoryOffline, Settable: true}}
		if off := sys.Vendor.Catalog.Offline; off != nil {
			si.offline = *off
		}
		if sys.Catalog != nil {
			if st, ok := sys.Catalog.ByName(presence.OfflineName); ok {
				si.offline = st
			}
		}
		e.systems[name] = si
		opts = append(opts, cel.Variable(name, cel.ObjectType(types.add(sys.Vendor))))
	}
	env, err := cel.NewEnv(opts...)
	if err != nil {
		return nil, err
	}
	e.cel = env
	return e, nil
}

// systemTypes gives each vendor kind a CEL object type ("omnipresence.salesforce") whose fields
// are new_state, old_state and the vendor's operands. At run time a system's variable is a
// map[string]any of those fields.
type systemTypes struct {
	base   celtypes.Provider
	fields map[string]map[string]*celtypes.Type // type name → field → type
}

const systemTypePrefix = "omnipresence."

// add declares the type of a vendor's systems and returns its name.
func (t *systemTypes) add(v *connector.Vendor) string {
	name := systemTypePrefix + v.Kind
	if _, done := t.fields[name]; done {
		return name
	}
	f := map[string]*celtypes.Type{fieldNewState: celtypes.StringType, fieldOldState: celtypes.StringType}
	for _, op := range v.Operands {
		switch op.Type {
		case connector.Int:
			f[op.Name] = celtypes.IntType
		case connector.Double:
			f[op.Name] = celtypes.DoubleType
		default:
			f[op.Name] = celtypes.StringType
		}
	}
	t.fields[name] = f
	return name
}

// option installs t as the environment's type provider, in front of the one it has.
func (t *systemTypes) option() cel.EnvOption {
	return func(env *cel.Env) (*cel.Env, error) {
		t.base = env.CELTypeProvider()
		return cel.CustomTypeProvider(t)(env)
	}
}

func (t *systemTypes) EnumValue(name string) ref.Val { return t.base.EnumValue(name) }

func (t *systemTypes) FindIdent(name string) (ref.Val, bool) { return t.base.FindIdent(name) }

func (t *systemTypes) FindStructType(name string) (*celtypes.Type, bool) {
	if _, ok := t.fields[name]; ok {
		return celtypes.NewTypeTypeWithParam(celtypes.NewObjectType(name)), true
	}
	return t.base.FindStructType(name)
}

func (t *systemTypes) FindStructFieldNames(name string) ([]string, bool) {
	if f, ok := t.fields[name]; ok {
		out := make([]string, 0, len(f))
		for k := range f {
			out = append(out, k)
		}
		sort.Strings(out)
		return out, true
	}
	return t.base.FindStructFieldNames(name)
}

func (t *systemTypes) FindStructFieldType(name, field string) (*celtypes.FieldType, bool) {
	f, ok := t.fields[name]
	if !ok {
		return t.base.FindStructFieldType(name, field)
	}
	typ, ok := f[field]
	if !ok {
		return nil, false
	}
	return &celtypes.FieldType{
		Type:  typ,
		IsSet: func(any) bool { return true },
		GetFrom: func(obj any) (any, error) {
			v, ok := obj.(*systemVars)
			if !ok {
				return nil, fmt.Errorf("no field %s on %T", field, obj)
			}
			return v.field(field), nil
		},
	}, true
}

func (t *systemTypes) NewValue(name string, fields map[string]ref.Val) ref.Val {
	if _, ok := t.fields[name]; ok {
		return celtypes.NewErr("%s values cannot be created in expressions", name)
	}
	return t.base.NewValue(name, fields)
}

// celTest is a compiled CEL rule test.
type celTest struct {
	src string
	prg cel.Program
}

func (t *celTest) eval(x *evalCtx) (bool, string) {
	out, _, err := t.prg.Eval(x.activation())
	if err != nil {
		return false, "cel error: " + err.Error()
	}
	ok, isBool := out.Value().(bool)
	if !isBool {
		return false, fmt.Sprintf("cel error: result is %s, not bool", out.Type().TypeName())
	}
	if ok {
		return true, "when: " + t.src + " is true"
	}
	return false, "when: " + t.src + " is false"
}

// celCondition compiles a CEL test, reporting problems at their place in the expression.
func (c *compiler) celCondition(n *yaml.Node, label string) (*condition, string, bool) {
	src := n.Value
	ast, iss := c.env.cel.Compile(src)
	if iss != nil && iss.Err() != nil {
		for _, e := range iss.Errors() {
			line, col := n.Line, n.Column
			if loc := e.Location; loc != nil && loc.Line() == 1 && (n.Style == 0 || n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0) {
				col += loc.Column()
				if n.Style != 0 {
					col++
				}
			}
			c.errAt(line, col, "when of %s: CEL: %s", label, e.Message)
		}
		return nil, "", false
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		c.errf(n, "when of %s must be a bool CEL expression, got %s; compare it, e.g. %s == ...",
			label, ast.OutputType(), src)
		return nil, "", false
	}
	if !c.celStatuses(n, ast.NativeRep()) {
		return nil, "", false
	}
	est, err := c.env.cel.EstimateCost(ast, sizeEstimator{})
	if err != nil {
		c.errf(n, "when of %s: CEL: cannot estimate its cost: %v", label, err)
		return nil, "", false
	}
	if est.Max > celCostLimit {
		c.errf(n, "when of %s: CEL expression may cost up to %d, above the limit of %d; simplify it",
			label, est.Max, celCostLimit)
		return nil, "", false
	}
	prg, err := c.env.cel.Program(ast, cel.CostLimit(celCostLimit), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		c.errf(n, "when of %s: CEL: %v", label, err)
		return nil, "", false
	}
	return &condition{cel: &celTest{src: src, prg: prg}}, src, true
}

// sizeEstimator bounds the size of every string, list and map at celSizeLimit.
type sizeEstimator struct{}

func (sizeEstimator) EstimateSize(cost.AstNode) *cost.SizeEstimate {
	return &cost.SizeEstimate{Min: 0, Max: celSizeLimit}
}

func (sizeEstimator) EstimateCallCost(string, string, *cost.AstNode, []cost.AstNode) *cost.CallEstimate {
	return nil
}

// activation builds the CEL variables for the event, once per evaluation: per system a
// systemVars, which computes a field only when an expression reads it.
func (x *evalCtx) activation() map[string]any {
	if x.cel != nil {
		return x.cel.act
	}
	act := make(map[string]any, len(x.env.names)+1)
	data := x.in.Event.Data
	if data == nil {
		data = map[string]any{}
	}
	act["event"] = &eventVars{Type: string(x.in.Event.Type), System: x.in.Event.System, Status: x.in.Event.Status, Data: data}
	ev := &celEvent{ev: x.in.Event, newState: x.newS.Name, oldState: x.in.Old.Name}
	for _, name := range x.env.names {
		v := &systemVars{ev: ev, si: x.env.systems[name], mine: name == x.in.Event.System}
		if !v.mine {
			v.current = x.in.Current[name].Name
		}
		act[name] = v
	}
	x.cel = &celVars{act: act}
	return act
}

// celEvent is what every system's CEL variable reads of the event.
type celEvent struct {
	ev                 presence.Event
	newState, oldState string
}

// systemVars is one system's CEL variable.
type systemVars struct {
	ev *celEvent
	si *sysInfo
	// mine is true for the event's system; current is what another system shows.
	mine    bool
	current string
}

// field is the value of a field of the system's type: its states, or an operand of its
// vendor (zero for a system other than the event's).
func (v *systemVars) field(name string) any {
	switch name {
	case fieldNewState:
		if v.mine {
			return v.ev.newState
		}
		return v.current
	case fieldOldState:
		if v.mine {
			return v.ev.oldState
		}
		return v.current
	}
	op := v.si.operand(name)
	if op == nil {
		return nil
	}
	switch op.Type {
	case connector.Int:
		if !v.mine {
			return int64(0)
		}
		return int64(op.Number(v.ev.ev))
	case connector.Double:
		if !v.mine {
			return 0.0
		}
		return op.Number(v.ev.ev)
	}
	if !v.mine {
		return ""
	}
	return op.Text(v.ev.ev)
}

// celStatuses checks the status names a CEL test compares a state with
// (connect.new_state == 'Lunch', connect.old_state in ['Lunch', 'Break']) against the catalog.
func (c *compiler) celStatuses(n *yaml.Node, tree *celast.AST) bool {
	ok := true
	check := func(state, lit celast.Expr) {
		s, field := c.celState(state)
		if s == nil || s.sys.Catalog == nil || lit.Kind() != celast.LiteralKind {
			return
		}
		name, isString := lit.AsLiteral().Value().(string)
		if !isString {
			return
		}
		if st, found := s.sys.Catalog.ByName(name); found && st.Name == name {
			return
		}
		var names []string
		for _, x := range s.sys.Catalog.Statuses() {
			names = append(names, x.Name)
		}
		msg := fmt.Sprintf("status %q is not in %s's catalog%s", name, s.name, didYouMean(name, names))
		if st, byID := s.sys.Catalog.ByID(name); byID {
			msg = fmt.Sprintf("%s.%s holds a status name, not an id: write %q instead of %q", s.name, field, st.Name, name)
		}
		line, col := n.Line, n.Column
		if loc := tree.SourceInfo().GetStartLocation(lit.ID()); loc.Line() == 1 && n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
			col += loc.Column()
			if n.Style != 0 {
				col++
			}
		}
		c.errAt(line, col, "%s", msg)
		ok = false
	}
	celast.PostOrderVisit(tree.Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		if e.Kind() != celast.CallKind {
			return
		}
		call := e.AsCall()
		args := call.Args()
		if len(args) != 2 {
			return
		}
		switch call.FunctionName() {
		case "_==_", "_!=_":
			check(args[0], args[1])
			check(args[1], args[0])
		case "@in":
			if args[1].Kind() == celast.ListKind {
				for _, el := range args[1].AsList().Elements() {
					check(args[0], el)
				}
			}
		}
	}))
	return ok
}

// celState returns the system and field of a "<system>.new_state" or "<system>.old_state"
// selection.
func (c *compiler) celState(e celast.Expr) (*sysInfo, string) {
	if e.Kind() != celast.SelectKind {
		return nil, ""
	}
	sel := e.AsSelect()
	f := sel.FieldName()
	if (f != fieldNewState && f != fieldOldState) || sel.Operand().Kind() != celast.IdentKind {
		return nil, ""
	}
	return c.env.systems[sel.Operand().AsIdent()], f
}
