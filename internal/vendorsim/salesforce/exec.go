package salesforce

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector/salesforce/sfid"
)

// apiError is an error in Salesforce's REST envelope.
type apiError struct {
	Status  int
	Code    string
	Message string
	Fields  []string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

// ordered is a JSON object that keeps its keys in insertion order, as Salesforce renders
// records (attributes first, then the selected fields).
type ordered struct {
	keys []string
	vals map[string]any
}

func newOrdered() *ordered { return &ordered{vals: map[string]any{}} }

func (o *ordered) set(k string, v any) {
	if _, ok := o.vals[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.vals[k] = v
}

// MarshalJSON writes the keys in order.
func (o *ordered) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		vb, err := json.Marshal(o.vals[k])
		if err != nil {
			return nil, err
		}
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// sfTime renders a date-time the way the REST API does.
func sfTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000+0000") }

// jsonValue converts a stored value to its REST JSON form.
func jsonValue(v any) any {
	if t, ok := v.(time.Time); ok {
		return sfTime(t)
	}
	return v
}

// attributes is the "attributes" member of a record.
func attributes(obj, id, version string) map[string]string {
	return map[string]string{"type": obj, "url": fmt.Sprintf("/services/data/v%s/sobjects/%s/%s", version, obj, id)}
}

// resolved is a field path checked against the schema.
type resolved struct {
	path []*field // reference fields walked, then the leaf
	objs []*object
}

func resolve(obj *object, p FieldPath) (resolved, *apiError) {
	var r resolved
	cur := obj
	for i, part := range p {
		r.objs = append(r.objs, cur)
		if i == len(p)-1 {
			f, ok := cur.field(part)
			if !ok {
				return r, invalidField(cur, p.String())
			}
			r.path = append(r.path, f)
			return r, nil
		}
		f, ok := cur.relationship(part)
		if !ok {
			return r, invalidField(cur, p.String())
		}
		r.path = append(r.path, f)
		cur = objects[f.RefTo]
	}
	return r, nil
}

func invalidField(obj *object, name string) *apiError {
	return &apiError{Status: 400, Code: "INVALID_FIELD",
		Message: fmt.Sprintf("No such column '%s' on entity '%s'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.", name, obj.Name)}
}

// value walks a resolved path from a row; a null reference yields nil.
func (o *org) value(r record, rs resolved) any {
	cur := r
	for i, f := range rs.path {
		v := cur[f.Name]
		if i == len(rs.path)-1 {
			return v
		}
		id, _ := v.(string)
		if cur = o.byID[id]; cur == nil {
			return nil
		}
	}
	return nil
}

// queryResult is the rows of a query, rendered, plus the total.
type queryResult struct {
	total   int
	records []*ordered
}

// query runs q. The simulator never deletes rows, so query and queryAll see the same rows.
func (o *org) query(q *Query, version string) (*queryResult, *apiError) {
	obj, ok := lookupObject(q.Object)
	if !ok {
		return nil, &apiError{Status: 400, Code: "INVALID_TYPE",
			Message: fmt.Sprintf("sObject type '%s' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.", q.Object)}
	}
	var sel []resolved
	for _, f := range q.Fields {
		rs, err := resolve(obj, f)
		if err != nil {
			return nil, err
		}
		sel = append(sel, rs)
	}
	var ord []resolved
	for _, ob := range q.OrderBy {
		rs, err := resolve(obj, ob.Field)
		if err != nil {
			return nil, err
		}
		ord = append(ord, rs)
	}
	pred, err := o.compile(obj, q.Where)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	var rows []record
	for _, r := range o.rows(obj.Name) {
		if pred == nil || pred(r) {
			rows = append(rows, r)
		}
	}
	if len(ord) > 0 {
		sort.SliceStable(rows, func(i, j int) bool {
			for k, rs := range ord {
				a, b := o.value(rows[i], rs), o.value(rows[j], rs)
				c := compareValues(a, b)
				if leaf := rs.path[len(rs.path)-1]; leaf.Type == typeID || leaf.Type == typeRef {
					// Ids sort by their case-sensitive 15-character key, which follows the
					// base-62 order 0-9, A-Z, a-z: creation order within an object.
					x, _ := a.(string)
					y, _ := b.(string)
					c = strings.Compare(x, y)
				}
				if a == nil || b == nil {
					if a == nil && b == nil {
						continue
					}
					if q.OrderBy[k].NullsFirst {
						return a == nil
					}
					return b == nil
				}
				if c == 0 {
					continue
				}
				if q.OrderBy[k].Desc {
					return c > 0
				}
				return c < 0
			}
			return false
		})
	}
	if q.Offset > 0 {
		if q.Offset > 2000 {
			return nil, &apiError{Status: 400, Code: "NUMBER_OUTSIDE_VALID_RANGE", Message: "Maximum SOQL offset allowed is 2000"}
		}
		if q.Offset >= len(rows) {
			rows = nil
		} else {
			rows = rows[q.Offset:]
		}
	}
	if q.Limit >= 0 && q.Limit < len(rows) {
		rows = rows[:q.Limit]
	}
	res := &queryResult{total: len(rows)}
	if q.Count {
		return res, nil
	}
	for _, r := range rows {
		res.records = append(res.records, o.render(obj, r, sel, version))
	}
	return res, nil
}

// render builds one record's JSON with nested relationship objects.
func (o *org) render(obj *object, r record, sel []resolved, version string) *ordered {
	out := newOrdered()
	out.set("attributes", attributes(obj.Name, r["Id"].(string), version))
	for _, rs := range sel {
		cur, curRec := out, r
		for k, f := range rs.path {
			if k == len(rs.path)-1 {
				cur.set(f.Name, jsonValue(curRec[f.Name]))
				break
			}
			id, _ := curRec[f.Name].(string)
			parent := o.byID[id]
			if parent == nil {
				cur.set(f.RelName, nil)
				break
			}
			next, ok := cur.vals[f.RelName].(*ordered)
			if !ok {
				next = newOrdered()
				next.set("attributes", attributes(f.RefTo, id, version))
				cur.set(f.RelName, next)
			}
			cur, curRec = next, parent
		}
	}
	return out
}

// compareValues orders two non-nil stored values of the same kind; mismatched kinds compare as
// strings.
func compareValues(a, b any) int {
	switch x := a.(type) {
	case string:
		if y, ok := b.(string); ok {
			return strings.Compare(strings.ToLower(x), strings.ToLower(y))
		}
	case int64:
		switch y := b.(type) {
		case int64:
			return cmpFloat(float64(x), float64(y))
		case float64:
			return cmpFloat(float64(x), y)
		}
	case float64:
		switch y := b.(type) {
		case int64:
			return cmpFloat(x, float64(y))
		case float64:
			return cmpFloat(x, y)
		}
	case bool:
		if y, ok := b.(bool); ok {
			switch {
			case x == y:
				return 0
			case !x:
				return -1
			}
			return 1
		}
	case time.Time:
		if y, ok := b.(time.Time); ok {
			return x.Compare(y)
		}
	}
	return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

type predicate func(record) bool

// compile checks a condition against the schema and turns it into a predicate.
func (o *org) compile(obj *object, c Cond) (predicate, *apiError) {
	switch c := c.(type) {
	case nil:
		return nil, nil
	case *And:
		l, err := o.compile(obj, c.L)
		if err != nil {
			return nil, err
		}
		r, err := o.compile(obj, c.R)
		if err != nil {
			return nil, err
		}
		return func(x record) bool { return l(x) && r(x) }, nil
	case *Or:
		l, err := o.compile(obj, c.L)
		if err != nil {
			return nil, err
		}
		r, err := o.compile(obj, c.R)
		if err != nil {
			return nil, err
		}
		return func(x record) bool { return l(x) || r(x) }, nil
	case *Not:
		x, err := o.compile(obj, c.X)
		if err != nil {
			return nil, err
		}
		return func(r record) bool { return !x(r) }, nil
	case *Compare:
		rs, err := resolve(obj, c.Field)
		if err != nil {
			return nil, err
		}
		leaf := rs.path[len(rs.path)-1]
		lits := c.Values
		if c.Op != "IN" && c.Op != "NOTIN" {
			lits = []Literal{c.Value}
		}
		vals := make([]any, len(lits))
		for i, l := range lits {
			v, err := o.coerce(leaf, l, c.Field)
			if err != nil {
				return nil, err
			}
			vals[i] = v
		}
		switch c.Op {
		case "LIKE":
			if leaf.Type == typeBool || leaf.Type == typeInt || leaf.Type == typeDouble || leaf.Type == typeDateTime {
				return nil, &apiError{Status: 400, Code: "INVALID_FIELD",
					Message: fmt.Sprintf("invalid operator on %s field: %s", leaf.Type, c.Field)}
			}
			re := likeRegexp(lits[0].S)
			return func(r record) bool {
				s, ok := o.value(r, rs).(string)
				return ok && re.MatchString(s)
			}, nil
		case "IN", "NOTIN":
			in := c.Op == "IN"
			return func(r record) bool {
				v := o.value(r, rs)
				for _, w := range vals {
					if equalValues(v, w) {
						return in
					}
				}
				return !in
			}, nil
		}
		want := vals[0]
		op := c.Op
		return func(r record) bool {
			v := o.value(r, rs)
			switch op {
			case "=":
				return equalValues(v, want)
			case "!=":
				return !equalValues(v, want)
			}
			if v == nil || want == nil {
				return false
			}
			n := compareValues(v, want)
			switch op {
			case "<":
				return n < 0
			case "<=":
				return n <= 0
			case ">":
				return n > 0
			}
			return n >= 0
		}, nil
	}
	return nil, &apiError{Status: 400, Code: "MALFORMED_QUERY", Message: "unsupported condition"}
}

func equalValues(a, b any) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return compareValues(a, b) == 0
}

// coerce converts a literal to the stored type of f, or reports the mismatch the way
// Salesforce does.
func (o *org) coerce(f *field, l Literal, name FieldPath) (any, *apiError) {
	if l.Kind == LitNull {
		return nil, nil
	}
	bad := &apiError{Status: 400, Code: "INVALID_FIELD",
		Message: fmt.Sprintf("value of filter criterion for field '%s' must be of type %s and should not be enclosed in quotes", name, f.Type)}
	switch f.Type {
	case typeID, typeRef:
		if l.Kind != LitString {
			return nil, bad
		}
		if id, ok := sfid.Canonical(l.S); ok {
			return id, nil
		}
		return nil, &apiError{Status: 400, Code: "INVALID_QUERY_FILTER_OPERATOR", Message: fmt.Sprintf("invalid ID field: %s", l.S)}
	case typeString, typePicklist, typeEmail:
		if l.Kind != LitString {
			bad.Message = fmt.Sprintf("value of filter criterion for field '%s' must be of type string and should be enclosed in quotes", name)
			return nil, bad
		}
		return l.S, nil
	case typeBool:
		if l.Kind != LitBool {
			return nil, bad
		}
		return l.B, nil
	case typeInt, typeDouble:
		if l.Kind != LitNumber {
			return nil, bad
		}
		if f.Type == typeInt {
			return int64(l.N), nil
		}
		return l.N, nil
	case typeDateTime:
		switch l.Kind {
		case LitDateTime:
			return l.T, nil
		case LitDate:
			if l.S == "" {
				return nil, &apiError{Status: 400, Code: "INVALID_FIELD",
					Message: fmt.Sprintf("value of filter criterion for field '%s' must be of type dateTime and should not be enclosed in quotes", name)}
			}
			day := o.now().UTC().Truncate(24 * time.Hour)
			switch l.S {
			case "YESTERDAY":
				day = day.AddDate(0, 0, -1)
			case "TOMORROW":
				day = day.AddDate(0, 0, 1)
			}
			return day, nil
		}
		return nil, bad
	}
	return nil, bad
}

// likeRegexp turns a LIKE pattern (% any run, _ one character, backslash escapes) into a
// case-insensitive regexp.
func likeRegexp(p string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("(?is)^")
	rs := []rune(p)
	for i := 0; i < len(rs); i++ {
		switch c := rs[i]; c {
		case '%':
			b.WriteString(".*")
		case '_':
			b.WriteString(".")
		case '\\':
			if i+1 < len(rs) {
				i++
				b.WriteString(regexp.QuoteMeta(string(rs[i])))
			}
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}
