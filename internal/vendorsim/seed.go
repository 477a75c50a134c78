package vendorsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
)

// LoadSeed reads a simulator's JSON seed file into a T, refusing fields T does not have.
func LoadSeed[T any](path string) (T, error) {
	var s T
	b, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		var zero T
		return zero, fmt.Errorf("seed %s: %w", path, err)
	}
	return s, nil
}
