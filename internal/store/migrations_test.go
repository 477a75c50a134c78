package store

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestMigrations(t *testing.T) {
	fsys := fstest.MapFS{
		"m/0002_more.sql": {Data: []byte("B")},
		"m/0010_late.sql": {Data: []byte("C")},
		"m/0001_init.sql": {Data: []byte("A")},
		"m/readme.txt":    {Data: []byte("ignored")},
	}
	got, err := Migrations(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, m := range got {
		order = append(order, m.Name+"="+m.SQL)
	}
	if strings.Join(order, ",") != "0001_init.sql=A,0002_more.sql=B,0010_late.sql=C" {
		t.Errorf("order = %v", order)
	}
	for name, fs := range map[string]fstest.MapFS{
		"no number": {"m/init.sql": {Data: []byte("A")}},
		"duplicate": {"m/1_a.sql": {Data: []byte("A")}, "m/01_b.sql": {Data: []byte("B")}},
	} {
		if _, err := Migrations(fs, "m"); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}
