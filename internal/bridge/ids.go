package bridge

// isID reports whether id is a 15- or 18-character alphanumeric Salesforce id with the key
// prefix (005 users, 00D orgs, 0N5 presence statuses).
func isID(id, prefix string) bool {
	if len(id) != 15 && len(id) != 18 || id[:3] != prefix {
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

// canonicalID returns the 18-character, case-safe form of a 15-character Salesforce id (the
// form the Salesforce connector reports), and any other string unchanged.
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
