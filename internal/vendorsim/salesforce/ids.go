package salesforce

import "github.com/omnipresence/omnipresence/internal/connector/salesforce/sfid"

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
	return sfid.To18(prefix + "5g" + string(digits[:]))
}
