package salesforce

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// The SOQL subset the simulator understands: what integrators write against presence objects.
//
//	SELECT field, Rel.field, … | COUNT() FROM Object
//	  [WHERE cond] [ORDER BY field [ASC|DESC] [NULLS FIRST|LAST], …] [LIMIT n] [OFFSET n]
//
// cond combines comparisons with AND, OR, NOT and parentheses; a comparison is
// field (= | != | <> | < | <= | > | >= | LIKE) literal, or field [NOT] IN (literal, …).
// Literals: 'strings' with backslash escapes, numbers, true, false, null, dates (2026-03-02),
// date-times (2026-03-02T09:00:00Z, …+01:00, …000+0000) and TODAY, YESTERDAY, TOMORROW.

// Query is a parsed SOQL statement.
type Query struct {
	Object  string
	Fields  []FieldPath
	Count   bool
	Where   Cond
	OrderBy []Order
	// Limit and Offset are -1 when absent.
	Limit  int
	Offset int
}

// FieldPath names a field, or a field of a parent reached through a relationship.
type FieldPath []string

func (p FieldPath) String() string { return strings.Join(p, ".") }

// Order is one ORDER BY item.
type Order struct {
	Field      FieldPath
	Desc       bool
	NullsFirst bool
}

// Cond is a WHERE condition: *And, *Or, *Not or *Compare.
type Cond interface{ cond() }

// And is l AND r.
type And struct{ L, R Cond }

// Or is l OR r.
type Or struct{ L, R Cond }

// Not is NOT x.
type Not struct{ X Cond }

// Compare is field op value, or field [NOT] IN (values).
type Compare struct {
	Field  FieldPath
	Op     string // = != < <= > >= LIKE IN NOTIN
	Value  Literal
	Values []Literal
}

func (*And) cond()     {}
func (*Or) cond()      {}
func (*Not) cond()     {}
func (*Compare) cond() {}

// LiteralKind tells what a literal holds.
type LiteralKind int

// Literal kinds.
const (
	LitString LiteralKind = iota
	LitNumber
	LitBool
	LitNull
	LitDate
	LitDateTime
)

// Literal is a value in a condition.
type Literal struct {
	Kind LiteralKind
	S    string
	N    float64
	B    bool
	T    time.Time
}

// SyntaxError is a malformed query; the REST layer answers it with MALFORMED_QUERY.
type SyntaxError struct{ Msg string }

func (e *SyntaxError) Error() string { return e.Msg }

type token struct {
	kind string // ident, string, number, sym, eof
	text string
	pos  int
}

func lex(s string) ([]token, error) {
	var out []token
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '\'':
			var b strings.Builder
			j := i + 1
			for {
				if j >= len(s) {
					return nil, &SyntaxError{fmt.Sprintf("unterminated string starting at column %d", i+1)}
				}
				if s[j] == '\\' {
					if j+1 >= len(s) {
						return nil, &SyntaxError{"dangling escape in string"}
					}
					switch e := s[j+1]; e {
					case 'n':
						b.WriteByte('\n')
					case 't':
						b.WriteByte('\t')
					case 'r':
						b.WriteByte('\r')
					case '\'', '"', '\\', '%', '_':
						if e == '%' || e == '_' {
							b.WriteByte('\\')
						}
						b.WriteByte(e)
					default:
						return nil, &SyntaxError{fmt.Sprintf("invalid escape sequence \\%c", e)}
					}
					j += 2
					continue
				}
				if s[j] == '\'' {
					break
				}
				b.WriteByte(s[j])
				j++
			}
			out = append(out, token{"string", b.String(), i})
			i = j + 1
		case c == '!' || c == '<' || c == '>' || c == '=':
			if i+1 < len(s) && (s[i:i+2] == "!=" || s[i:i+2] == "<=" || s[i:i+2] == ">=" || s[i:i+2] == "<>") {
				out = append(out, token{"sym", s[i : i+2], i})
				i += 2
			} else if c == '!' {
				return nil, &SyntaxError{fmt.Sprintf("unexpected token: '!' at column %d", i+1)}
			} else {
				out = append(out, token{"sym", string(c), i})
				i++
			}
		case c == '(' || c == ')' || c == ',':
			out = append(out, token{"sym", string(c), i})
			i++
		case c == '-' || c == '+' || (c >= '0' && c <= '9') || c == '.':
			j := i + 1
			for j < len(s) && (isWordByte(s[j]) || s[j] == '.' || s[j] == ':' ||
				((s[j] == '+' || s[j] == '-') && j > i)) {
				j++
			}
			out = append(out, token{"number", s[i:j], i})
			i = j
		case isWordByte(c):
			j := i
			for j < len(s) && (isWordByte(s[j]) || s[j] == '.' || s[j] == ':') {
				j++
			}
			out = append(out, token{"ident", s[i:j], i})
			i = j
		default:
			return nil, &SyntaxError{fmt.Sprintf("unexpected character %q at column %d", c, i+1)}
		}
	}
	return append(out, token{"eof", "", len(s)}), nil
}

func isWordByte(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

type parser struct {
	toks []token
	i    int
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != "eof" {
		p.i++
	}
	return t
}

func (p *parser) isKeyword(words ...string) bool {
	t := p.peek()
	if t.kind != "ident" {
		return false
	}
	for _, w := range words {
		if strings.EqualFold(t.text, w) {
			return true
		}
	}
	return false
}

func (p *parser) expectKeyword(w string) error {
	if !p.isKeyword(w) {
		return p.unexpected("expecting " + w)
	}
	p.next()
	return nil
}

func (p *parser) expectSym(s string) error {
	if t := p.peek(); t.kind != "sym" || t.text != s {
		return p.unexpected(fmt.Sprintf("expecting '%s'", s))
	}
	p.next()
	return nil
}

func (p *parser) unexpected(want string) error {
	t := p.peek()
	if t.kind == "eof" {
		return &SyntaxError{"unexpected end of query, " + want}
	}
	return &SyntaxError{fmt.Sprintf("unexpected token: '%s' at column %d, %s", t.text, t.pos+1, want)}
}

var reserved = map[string]bool{"SELECT": true, "FROM": true, "WHERE": true, "AND": true, "OR": true,
	"NOT": true, "ORDER": true, "BY": true, "LIMIT": true, "OFFSET": true, "IN": true, "LIKE": true,
	"ASC": true, "DESC": true, "NULLS": true, "FIRST": true, "LAST": true, "NULL": true,
	"TRUE": true, "FALSE": true}

// ParseSOQL parses one query of the supported subset.
func ParseSOQL(s string) (*Query, error) {
	toks, err := lex(s)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	q := &Query{Limit: -1, Offset: -1}
	if err := p.expectKeyword("SELECT"); err != nil {
		return nil, err
	}
	if p.isKeyword("COUNT") {
		p.next()
		if err := p.expectSym("("); err != nil {
			return nil, err
		}
		if err := p.expectSym(")"); err != nil {
			return nil, err
		}
		q.Count = true
	} else {
		for {
			f, err := p.fieldPath()
			if err != nil {
				return nil, err
			}
			q.Fields = append(q.Fields, f)
			if t := p.peek(); t.kind == "sym" && t.text == "," {
				p.next()
				continue
			}
			break
		}
	}
	if err := p.expectKeyword("FROM"); err != nil {
		return nil, err
	}
	t := p.next()
	if t.kind != "ident" || reserved[strings.ToUpper(t.text)] || strings.Contains(t.text, ".") {
		p.i--
		return nil, p.unexpected("expecting an object name")
	}
	q.Object = t.text
	if p.isKeyword("WHERE") {
		p.next()
		if q.Where, err = p.orCond(); err != nil {
			return nil, err
		}
	}
	if p.isKeyword("ORDER") {
		p.next()
		if err := p.expectKeyword("BY"); err != nil {
			return nil, err
		}
		for {
			f, err := p.fieldPath()
			if err != nil {
				return nil, err
			}
			o := Order{Field: f}
			if p.isKeyword("ASC", "DESC") {
				o.Desc = strings.EqualFold(p.next().text, "DESC")
			}
			o.NullsFirst = !o.Desc
			if p.isKeyword("NULLS") {
				p.next()
				if !p.isKeyword("FIRST", "LAST") {
					return nil, p.unexpected("expecting FIRST or LAST")
				}
				o.NullsFirst = strings.EqualFold(p.next().text, "FIRST")
			}
			q.OrderBy = append(q.OrderBy, o)
			if t := p.peek(); t.kind == "sym" && t.text == "," {
				p.next()
				continue
			}
			break
		}
	}
	if p.isKeyword("LIMIT") {
		p.next()
		if q.Limit, err = p.count(); err != nil {
			return nil, err
		}
	}
	if p.isKeyword("OFFSET") {
		p.next()
		if q.Offset, err = p.count(); err != nil {
			return nil, err
		}
	}
	if p.peek().kind != "eof" {
		return nil, p.unexpected("expecting end of query")
	}
	return q, nil
}

func (p *parser) count() (int, error) {
	t := p.next()
	n, err := strconv.Atoi(t.text)
	if t.kind != "number" || err != nil || n < 0 {
		p.i--
		return 0, p.unexpected("expecting a non-negative integer")
	}
	return n, nil
}

func (p *parser) fieldPath() (FieldPath, error) {
	t := p.peek()
	if t.kind != "ident" || reserved[strings.ToUpper(t.text)] {
		return nil, p.unexpected("expecting a field name")
	}
	p.next()
	parts := strings.Split(t.text, ".")
	for _, part := range parts {
		if part == "" || strings.Contains(part, ":") || !unicode.IsLetter(rune(part[0])) {
			p.i--
			return nil, p.unexpected("expecting a field name")
		}
	}
	if len(parts) > 5 {
		return nil, &SyntaxError{"a relationship path can be at most 5 levels deep: " + t.text}
	}
	return FieldPath(parts), nil
}

func (p *parser) orCond() (Cond, error) {
	l, err := p.andCond()
	if err != nil {
		return nil, err
	}
	for p.isKeyword("OR") {
		p.next()
		r, err := p.andCond()
		if err != nil {
			return nil, err
		}
		l = &Or{l, r}
	}
	return l, nil
}

func (p *parser) andCond() (Cond, error) {
	l, err := p.unaryCond()
	if err != nil {
		return nil, err
	}
	for p.isKeyword("AND") {
		p.next()
		r, err := p.unaryCond()
		if err != nil {
			return nil, err
		}
		l = &And{l, r}
	}
	return l, nil
}

func (p *parser) unaryCond() (Cond, error) {
	if p.isKeyword("NOT") {
		p.next()
		x, err := p.unaryCond()
		if err != nil {
			return nil, err
		}
		return &Not{x}, nil
	}
	if t := p.peek(); t.kind == "sym" && t.text == "(" {
		p.next()
		c, err := p.orCond()
		if err != nil {
			return nil, err
		}
		if err := p.expectSym(")"); err != nil {
			return nil, err
		}
		return c, nil
	}
	f, err := p.fieldPath()
	if err != nil {
		return nil, err
	}
	c := &Compare{Field: f}
	switch t := p.peek(); {
	case t.kind == "sym" && strings.Contains("= != <> < <= > >=", t.text) && t.text != "(" && t.text != ")" && t.text != ",":
		p.next()
		c.Op = t.text
		if c.Op == "<>" {
			c.Op = "!="
		}
	case p.isKeyword("LIKE"):
		p.next()
		c.Op = "LIKE"
	case p.isKeyword("IN"):
		p.next()
		c.Op = "IN"
	case p.isKeyword("NOT"):
		p.next()
		if !p.isKeyword("IN") {
			return nil, p.unexpected("expecting IN")
		}
		p.next()
		c.Op = "NOTIN"
	default:
		return nil, p.unexpected("expecting a comparison operator")
	}
	if c.Op == "IN" || c.Op == "NOTIN" {
		if err := p.expectSym("("); err != nil {
			return nil, err
		}
		for {
			v, err := p.literal()
			if err != nil {
				return nil, err
			}
			c.Values = append(c.Values, v)
			if t := p.peek(); t.kind == "sym" && t.text == "," {
				p.next()
				continue
			}
			break
		}
		return c, p.expectSym(")")
	}
	if c.Value, err = p.literal(); err != nil {
		return nil, err
	}
	if c.Op == "LIKE" && c.Value.Kind != LitString {
		return nil, &SyntaxError{"LIKE needs a string literal"}
	}
	return c, nil
}

var dateLayouts = []string{"2006-01-02T15:04:05Z07:00", "2006-01-02T15:04:05.000Z07:00",
	"2006-01-02T15:04:05-0700", "2006-01-02T15:04:05.000-0700", "2006-01-02T15:04:05.999999999Z07:00"}

func (p *parser) literal() (Literal, error) {
	t := p.next()
	switch t.kind {
	case "string":
		return Literal{Kind: LitString, S: t.text}, nil
	case "number":
		if len(t.text) >= 10 && t.text[4] == '-' {
			if len(t.text) == 10 {
				if d, err := time.Parse("2006-01-02", t.text); err == nil {
					return Literal{Kind: LitDate, T: d}, nil
				}
			}
			for _, l := range dateLayouts {
				if d, err := time.Parse(l, t.text); err == nil {
					return Literal{Kind: LitDateTime, T: d.UTC()}, nil
				}
			}
			p.i--
			return Literal{}, p.unexpected("expecting a valid date or date-time")
		}
		n, err := strconv.ParseFloat(t.text, 64)
		if err != nil {
			p.i--
			return Literal{}, p.unexpected("expecting a number")
		}
		return Literal{Kind: LitNumber, N: n, S: t.text}, nil
	case "ident":
		switch strings.ToUpper(t.text) {
		case "TRUE", "FALSE":
			return Literal{Kind: LitBool, B: strings.EqualFold(t.text, "TRUE")}, nil
		case "NULL":
			return Literal{Kind: LitNull}, nil
		case "TODAY", "YESTERDAY", "TOMORROW":
			return Literal{Kind: LitDate, S: strings.ToUpper(t.text)}, nil
		}
	}
	p.i--
	return Literal{}, p.unexpected("expecting a value")
}
