package engine

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fill sets every exported field reachable from v to a value that is not the zero one, so a
// field the binary form forgets (one added later, say) shows up as a difference.
func fill(t *testing.T, v reflect.Value, r *rand.Rand, depth int) {
	t.Helper()
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Unix(1_700_000_000+r.Int64N(1e6), r.Int64N(1e9)).UTC()))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(t, v.Field(i), r, depth)
			}
		}
	case reflect.Pointer:
		if depth > 3 {
			return
		}
		p := reflect.New(v.Type().Elem())
		fill(t, p.Elem(), r, depth+1)
		v.Set(p)
	case reflect.Slice:
		if depth > 3 {
			return
		}
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(t, s.Index(i), r, depth+1)
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		if v.Type().Elem().Kind() == reflect.Interface {
			m.SetMapIndex(reflect.ValueOf("queueId"), reflect.ValueOf("q1"))
			m.SetMapIndex(reflect.ValueOf("n"), reflect.ValueOf(1.5))
			v.Set(m)
			return
		}
		for _, k := range []string{"sf", "gc", "sf"} { // a repeated key: strings are shared
			e := reflect.New(v.Type().Elem()).Elem()
			fill(t, e, r, depth+1)
			m.SetMapIndex(reflect.ValueOf(k), e)
		}
		v.Set(m)
	case reflect.String:
		if n := r.IntN(10); n < 5 {
			v.SetString([]string{"sf", "gc", "Lunch", "ana@example.com", "é \"q\"\n"}[n])
		} else {
			v.SetString(fmt.Sprint("s", r.IntN(100))) // more strings than the encoder scans
		}
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(r.Int64N(1<<40) - 1<<39)
	default:
		t.Fatalf("fill: kind %s of %s not handled", v.Kind(), v.Type())
	}
}

func asJSON(t *testing.T, st *agentState) any {
	t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestStateCodecRoundTrip(t *testing.T) {
	var strs stateScratch
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 1))
		var st agentState
		fill(t, reflect.ValueOf(&st).Elem(), r, 0)
		bin, err := appendState(nil, &st, &strs)
		if err != nil {
			t.Fatal(err)
		}
		var got agentState
		if err := decodeState(bin, &got); err != nil {
			t.Fatalf("seed %d: decode: %v", seed, err)
		}
		if diff := cmp.Diff(asJSON(t, &st), asJSON(t, &got)); diff != "" {
			t.Fatalf("seed %d: the binary form lost something (-want +got):\n%s", seed, diff)
		}
		// A row an earlier version wrote as JSON still reads.
		old, err := json.Marshal(&st)
		if err != nil {
			t.Fatal(err)
		}
		var fromJSON agentState
		if err := decodeState(old, &fromJSON); err != nil {
			t.Fatalf("seed %d: decoding the JSON form: %v", seed, err)
		}
		if diff := cmp.Diff(asJSON(t, &st), asJSON(t, &fromJSON)); diff != "" {
			t.Fatalf("seed %d: JSON form (-want +got):\n%s", seed, diff)
		}
		if len(bin) >= len(old) {
			t.Errorf("seed %d: binary form %d bytes, JSON %d", seed, len(bin), len(old))
		}
		// Every truncation is an error, never a panic or a silent success.
		for n := 1; n < len(bin); n++ {
			var cut agentState
			if err := decodeState(bin[:n], &cut); err == nil {
				t.Fatalf("seed %d: %d of %d bytes decoded without an error", seed, n, len(bin))
			}
		}
	}
}

func TestStateCodecEmpty(t *testing.T) {
	st := agentState{Email: "a@x"}
	bin, err := appendState(nil, &st, &stateScratch{})
	if err != nil {
		t.Fatal(err)
	}
	var got agentState
	if err := decodeState(bin, &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(asJSON(t, &st), asJSON(t, &got)); diff != "" {
		t.Fatal(diff)
	}
}
