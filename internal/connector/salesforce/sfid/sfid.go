// Package sfid handles Salesforce record ids: the 15-character case-sensitive form, the
// 18-character case-safe form the APIs return, and the three-character key prefix that names
// an id's object (005 users, 00D orgs, 0N5 presence statuses). The connector, its Omni-Channel
// bridge and the Salesforce simulator all use it, so an id compares the same everywhere.
package sfid

import "strings"

const (
	base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	suffix = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
)

// To18 appends to a 15-character id the suffix that makes it case-insensitively unique.
func To18(id15 string) string {
	var b strings.Builder
	b.Grow(18)
	b.WriteString(id15)
	for chunk := 0; chunk < 3; chunk++ {
		flags := 0
		for i := 0; i < 5; i++ {
			if c := id15[chunk*5+i]; c >= 'A' && c <= 'Z' {
				flags |= 1 << i
			}
		}
		b.WriteByte(suffix[flags])
	}
	return b.String()
}

// Canonical returns the 18-character form of a 15- or 18-character id and whether s is an id
// at all. An 18-character id is read case-insensitively: its suffix restores the case of the
// first 15 characters, so an id lowercased on its way through another system still matches.
func Canonical(s string) (string, bool) {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(base62, s[i]) < 0 {
			return "", false
		}
	}
	switch len(s) {
	case 15:
		return To18(s), true
	case 18:
		b := []byte(strings.ToLower(s[:15]))
		for chunk := 0; chunk < 3; chunk++ {
			flags := strings.IndexByte(suffix, strings.ToUpper(s[15+chunk : 16+chunk])[0])
			if flags < 0 {
				return "", false
			}
			for i := 0; i < 5; i++ {
				if flags&(1<<i) != 0 {
					c := b[chunk*5+i]
					if c < 'a' || c > 'z' {
						return "", false
					}
					b[chunk*5+i] = c - 'a' + 'A'
				}
			}
		}
		return To18(string(b)), true
	}
	return "", false
}

// Normalize returns the 18-character form of a 15-character id, and any other string unchanged:
// the ids Salesforce's APIs return are already 18 characters, and are kept as they come.
func Normalize(s string) string {
	if len(s) == 15 {
		if id, ok := Canonical(s); ok {
			return id
		}
	}
	return s
}

// Is reports whether s is a 15- or 18-character id of the object whose key prefix is given.
func Is(s, prefix string) bool {
	_, ok := Canonical(s)
	return ok && strings.HasPrefix(s, prefix)
}

// To15 returns the 15-character, case-sensitive form of a 15- or 18-character id (what the
// Omni toolkit takes), and any other string unchanged.
func To15(s string) string {
	if id, ok := Canonical(s); ok {
		return id[:15]
	}
	return s
}
