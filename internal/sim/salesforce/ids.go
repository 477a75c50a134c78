package salesforce

import (
	"strings"
)

// Key prefixes of the objects the simulator serves: the first three characters of every id
// tell its object, as in a real org.
const (
	prefixOrg                  = "00D"
	prefixUser                 = "005"
	prefixServicePresenceStat  = "0N5"
	prefixServiceChannel       = "0N9"
	prefixServiceChannelStatus = "0N1"
	prefixUserServicePresence  = "0Hn"
	prefixPresenceUserConfig   = "0Nd"
	prefixAgentWork            = "0Bz"
	prefixQueryLocator         = "01g"
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// newID returns the 18-character id of record n of an object: the key prefix, a pod-like "5g"
// and the number in base 62, then the three-character case-safe suffix.
func newID(prefix string, n int) string {
	var digits [10]byte
	for i := len(digits) - 1; i >= 0; i-- {
		digits[i] = base62[n%62]
		n /= 62
	}
	return to18(prefix + "5g" + string(digits[:]))
}

// to18 appends the checksum suffix that makes a 15-character id case-insensitively unique.
func to18(id15 string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
	var b strings.Builder
	b.WriteString(id15)
	for chunk := 0; chunk < 3; chunk++ {
		flags := 0
		for i := 0; i < 5; i++ {
			c := id15[chunk*5+i]
			if c >= 'A' && c <= 'Z' {
				flags |= 1 << i
			}
		}
		b.WriteByte(alphabet[flags])
	}
	return b.String()
}

// canonicalID returns the 18-character form of a 15- or 18-character id and whether s looks
// like an id at all. An 18-character id is case-insensitive: its suffix restores the case of
// the first 15 characters.
func canonicalID(s string) (string, bool) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune(base62, rune(s[i])) {
			return "", false
		}
	}
	switch len(s) {
	case 15:
		return to18(s), true
	case 18:
		b := []byte(strings.ToLower(s[:15]))
		for chunk := 0; chunk < 3; chunk++ {
			flags := strings.IndexByte(alphabet, strings.ToUpper(s[15+chunk : 16+chunk])[0])
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
		return to18(string(b)), true
	}
	return "", false
}
