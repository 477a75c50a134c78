package salesforce

// canonicalID returns the 18-character, case-safe form of a 15-character Salesforce id, and
// any other string unchanged.
func canonicalID(id string) string {
	if len(id) != 15 {
		return id
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
	out := []byte(id)
	for chunk := 0; chunk < 3; chunk++ {
		flags := 0
		for i := 0; i < 5; i++ {
			if c := id[chunk*5+i]; c >= 'A' && c <= 'Z' {
				flags |= 1 << i
			}
		}
		out = append(out, alphabet[flags])
	}
	return string(out)
}

// validID reports whether id is an 18-character alphanumeric id, safe to put in SOQL.
func validID(id string) bool {
	if len(id) != 18 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}
