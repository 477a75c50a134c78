package store

// DedupeHash is the 8-byte key the SQL backends index events by instead of the dedupe key's
// text: FNV-1a of the key, and for probe > 0 (the key collided with another key's hash) of the
// key followed by the probe number. A backend inserts at probe 0, and on a conflict with a
// different key tries the next probe, so two keys never share a row.
func DedupeHash(key string, probe int) int64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= prime
	}
	for p := probe; p > 0; p >>= 8 {
		h ^= uint64(p & 0xff)
		h *= prime
	}
	if probe > 0 {
		h ^= 0xff // probe 256 and probe 1 differ from the key with a byte appended
		h *= prime
	}
	return int64(h)
}
