package policy

import (
	"fmt"
	"reflect"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/ext"
	"go.yaml.in/yaml/v3"

	"github.com/omnipresence/omnipresence/internal/presence"
)

// celCostLimit bounds both the estimated cost of an expression at load time and the actual
// cost of one evaluation.
const celCostLimit = 100_000

// celSizeLimit is the size assumed for strings, lists and maps when estimating cost.
const celSizeLimit = 1024

// salesforceVars are the CEL fields of a salesforce system's variable.
type salesforceVars struct {
	NewState            string  `cel:"new_state"`
	OldState            string  `cel:"old_state"`
	Channel             string  `cel:"channel"`
	PreviousWorkload    int64   `cel:"previous_workload"`
	NewWorkload         int64   `cel:"new_workload"`
	PreviousWorkloadPct float64 `cel:"previous_workload_pct"`
	NewWorkloadPct      float64 `cel:"new_workload_pct"`
	ConfiguredCapacity  int64   `cel:"configured_capacity"`
}

// stateVars are the CEL fields of any other system's variable.
type stateVars struct {
	NewState string `cel:"new_state"`
	OldState string `cel:"old_state"`
}

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
	// offline is the status a logout means.
	offline presence.Status
}

// evalEnv is shared by every policy of a Config.
type evalEnv struct {
	systems map[string]*sysInfo
	names   []string
	cel     *cel.Env
}

func newEvalEnv(cfg *Config) (*evalEnv, error) {
	e := &evalEnv{systems: map[string]*sysInfo{}, names: cfg.SystemNames}
	opts := []cel.EnvOption{
		ext.NativeTypes(reflect.TypeFor[salesforceVars](), reflect.TypeFor[stateVars](),
			reflect.TypeFor[eventVars](), ext.ParseStructTags(true)),
		cel.CrossTypeNumericComparisons(true),
		cel.Variable("event", cel.ObjectType("policy.eventVars")),
	}
	for _, name := range cfg.SystemNames {
		sys := cfg.Systems[name]
		si := &sysInfo{name: name, kind: sys.Kind, sys: sys, offline: presence.Status{Name: presence.OfflineName,
			Label: presence.OfflineName, Category: presence.CategoryOffline, Settable: true}}
		if sys.Kind == KindSalesforce {
			si.offline = salesforceOffline
		}
		if sys.Catalog != nil {
			if st, ok := sys.Catalog.ByName(presence.OfflineName); ok {
				si.offline = st
			}
		}
		e.systems[name] = si
		typ := "policy.stateVars"
		if sys.Kind == KindSalesforce {
			typ = "policy.salesforceVars"
		}
		opts = append(opts, cel.Variable(name, cel.ObjectType(typ)))
	}
	env, err := cel.NewEnv(opts...)
	if err != nil {
		return nil, err
	}
	e.cel = env
	return e, nil
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

// activation builds the CEL variables for the event, once per evaluation.
func (x *evalCtx) activation() map[string]any {
	if x.cel != nil {
		return x.cel.act
	}
	act := make(map[string]any, len(x.env.names)+1)
	act["event"] = &eventVars{Type: string(x.in.Event.Type), System: x.in.Event.System, Status: x.in.Event.Status, Data: x.in.Event.Data}
	for _, name := range x.env.names {
		si := x.env.systems[name]
		st := stateVars{NewState: x.in.Current[name].Name, OldState: x.in.Current[name].Name}
		if name == x.in.Event.System {
			st = stateVars{NewState: x.newS.Name, OldState: x.in.Old.Name}
		}
		if si.kind != KindSalesforce {
			act[name] = &st
			continue
		}
		v := &salesforceVars{NewState: st.NewState, OldState: st.OldState}
		if name == x.in.Event.System {
			w := x.workload()
			v.Channel = w.channel
			v.PreviousWorkload, v.NewWorkload, v.ConfiguredCapacity = int64(w.previous), int64(w.next), int64(w.capacity)
			v.PreviousWorkloadPct, v.NewWorkloadPct = w.pct(w.previous), w.pct(w.next)
		}
		act[name] = v
	}
	if act["event"].(*eventVars).Data == nil {
		act["event"].(*eventVars).Data = map[string]any{}
	}
	x.cel = &celVars{act: act}
	return act
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
	if (f != "new_state" && f != "old_state") || sel.Operand().Kind() != celast.IdentKind {
		return nil, ""
	}
	return c.env.systems[sel.Operand().AsIdent()], f
}
