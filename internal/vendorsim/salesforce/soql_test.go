package salesforce

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/omnipresence/omnipresence/internal/connector/salesforce/sfid"
)

func TestParseSOQL(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want *Query
	}{
		{"fields and relationship", "SELECT Id, ServicePresenceStatus.DeveloperName FROM UserServicePresence",
			&Query{Object: "UserServicePresence", Fields: []FieldPath{{"Id"}, {"ServicePresenceStatus", "DeveloperName"}}, Limit: -1, Offset: -1}},
		{"count", "select count() from User", &Query{Object: "User", Count: true, Limit: -1, Offset: -1}},
		{"where and or not", "SELECT Id FROM User WHERE IsActive = true AND (Email LIKE 'a%' OR NOT Name != 'x')",
			&Query{Object: "User", Fields: []FieldPath{{"Id"}}, Limit: -1, Offset: -1,
				Where: &And{
					&Compare{Field: FieldPath{"IsActive"}, Op: "=", Value: Literal{Kind: LitBool, B: true}},
					&Or{&Compare{Field: FieldPath{"Email"}, Op: "LIKE", Value: Literal{Kind: LitString, S: "a%"}},
						&Not{&Compare{Field: FieldPath{"Name"}, Op: "!=", Value: Literal{Kind: LitString, S: "x"}}}},
				}}},
		{"in, not in, <>", "SELECT Id FROM User WHERE Id IN ('a','b') AND Name NOT IN ('c') AND Name <> null",
			&Query{Object: "User", Fields: []FieldPath{{"Id"}}, Limit: -1, Offset: -1,
				Where: &And{&And{
					&Compare{Field: FieldPath{"Id"}, Op: "IN", Values: []Literal{{Kind: LitString, S: "a"}, {Kind: LitString, S: "b"}}},
					&Compare{Field: FieldPath{"Name"}, Op: "NOTIN", Values: []Literal{{Kind: LitString, S: "c"}}}},
					&Compare{Field: FieldPath{"Name"}, Op: "!=", Value: Literal{Kind: LitNull}}}}},
		{"dates and numbers", "SELECT Id FROM UserServicePresence WHERE StatusStartDate >= 2026-03-02T09:00:00Z AND StatusDuration < 60.5 AND CreatedDate > 2026-03-01",
			&Query{Object: "UserServicePresence", Fields: []FieldPath{{"Id"}}, Limit: -1, Offset: -1,
				Where: &And{&And{
					&Compare{Field: FieldPath{"StatusStartDate"}, Op: ">=", Value: Literal{Kind: LitDateTime, T: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}},
					&Compare{Field: FieldPath{"StatusDuration"}, Op: "<", Value: Literal{Kind: LitNumber, N: 60.5, S: "60.5"}}},
					&Compare{Field: FieldPath{"CreatedDate"}, Op: ">", Value: Literal{Kind: LitDate, T: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}}}}},
		{"order limit offset", "SELECT Name FROM User ORDER BY LastName DESC NULLS FIRST, Id LIMIT 10 OFFSET 5",
			&Query{Object: "User", Fields: []FieldPath{{"Name"}}, Limit: 10, Offset: 5,
				OrderBy: []Order{{Field: FieldPath{"LastName"}, Desc: true, NullsFirst: true}, {Field: FieldPath{"Id"}, NullsFirst: true}}}},
		{"escapes", `SELECT Id FROM User WHERE Name = 'O\'Brien\\'`,
			&Query{Object: "User", Fields: []FieldPath{{"Id"}}, Limit: -1, Offset: -1,
				Where: &Compare{Field: FieldPath{"Name"}, Op: "=", Value: Literal{Kind: LitString, S: `O'Brien\`}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSOQL(tc.in)
			if err != nil {
				t.Fatalf("ParseSOQL: %v", err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("mismatch (-want +got):\n%s", d)
			}
		})
	}
}

func TestParseSOQLErrors(t *testing.T) {
	for _, in := range []string{
		"", "SELECT", "SELECT FROM User", "SELECT Id User", "SELECT Id FROM", "SELECT Id, FROM User",
		"SELECT Id FROM User WHERE", "SELECT Id FROM User WHERE Name", "SELECT Id FROM User WHERE Name = ",
		"SELECT Id FROM User WHERE Name = 'x", "SELECT Id FROM User WHERE (Name = 'x'", "SELECT Id FROM User LIMIT -1",
		"SELECT Id FROM User LIMIT x", "SELECT Id FROM User extra", "SELECT Id FROM User WHERE Name LIKE 5",
		"SELECT Id FROM User WHERE Id IN ()", "SELECT Id FROM User WHERE Name ! 'x'", "SELECT Id FROM User WHERE d = 2026-13-45",
		"SELECT Id FROM User WHERE Name = 'a\\q'", "SELECT a.b.c.d.e.f FROM User", "SELECT Id FROM User ORDER Id",
		"SELECT Id FROM User WHERE Name NOT LIKE 'x'", "SELECT Id FROM User WHERE Name = LAST_N_DAYS:3",
	} {
		if q, err := ParseSOQL(in); err == nil {
			t.Errorf("ParseSOQL(%q) = %+v, want an error", in, q)
		} else if _, ok := err.(*SyntaxError); !ok {
			t.Errorf("ParseSOQL(%q) error %T, want *SyntaxError", in, err)
		}
	}
}

func FuzzParseSOQL(f *testing.F) {
	for _, s := range []string{
		"SELECT Id, DeveloperName, MasterLabel FROM ServicePresenceStatus WHERE IsDeleted = false",
		"SELECT COUNT() FROM User WHERE Email LIKE '%@example.com' OR (IsActive = true AND NOT Name IN ('a'))",
		"SELECT UserId FROM UserServicePresence WHERE StatusStartDate > 2026-01-01T00:00:00.000+0000 ORDER BY Id DESC NULLS LAST LIMIT 5",
		`SELECT Id FROM User WHERE Name = 'x\'y'`,
	} {
		f.Add(s)
	}
	o := newOrg(time.Now, time.Hour)
	o.load(DemoSeed(), "integration@omnipresence.example")
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseSOQL(s)
		if err != nil {
			if _, ok := err.(*SyntaxError); !ok {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		if q.Object == "" || (!q.Count && len(q.Fields) == 0) {
			t.Fatalf("accepted %q without object or fields: %+v", s, q)
		}
		// Whatever parses must run without panicking: a result or an API error.
		_, _ = o.query(q, latestVersion)
	})
}

func TestLikeRegexp(t *testing.T) {
	for _, tc := range []struct {
		pat, s string
		want   bool
	}{{"a%", "Ana", true}, {"%@example.com", "ana@Example.com", true}, {"_na", "ana", true},
		{"_na", "anna", false}, {`100\%`, "100%", true}, {`100\%`, "1000", false}, {"é%", "Élan", true}} {
		if got := likeRegexp(tc.pat).MatchString(tc.s); got != tc.want {
			t.Errorf("%q LIKE %q = %v, want %v", tc.s, tc.pat, got, tc.want)
		}
	}
}

func TestIDs(t *testing.T) {
	id := newID(prefixUser, 1)
	if len(id) != 18 || !strings.HasPrefix(id, "005") {
		t.Fatalf("newID = %q", id)
	}
	if got, ok := sfid.Canonical(id[:15]); !ok || got != id {
		t.Fatalf("the 15-character form of %q does not read back", id)
	}
}
