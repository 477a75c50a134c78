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

// PickSeed is the seed a simulator starts with: seed when not nil, else the file's when file
// is set, else demo's.
func PickSeed[T any](seed *T, file string, demo func() T) (T, error) {
	switch {
	case seed != nil:
		return *seed, nil
	case file != "":
		return LoadSeed[T](file)
	}
	return demo(), nil
}
