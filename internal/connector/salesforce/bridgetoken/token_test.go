package bridgetoken

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

var testSecret = []byte("bridge-test-secret")

const (
	testUser = "005000000000001AAA"
	testOrg  = "00D000000000001AAA"
)

func TestVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	at := func(iat, exp time.Duration) Claims {
		return Claims{Sub: testUser, Org: testOrg, Iat: now.Add(iat).Unix(), Exp: now.Add(exp).Unix()}
	}
	good := at(0, 10*time.Minute).Sign(testSecret)
	payload := strings.Split(good, ".")[1]
	sig := strings.Split(good, ".")[2]
	raw := func(json string) string {
		p := base64.RawURLEncoding.EncodeToString([]byte(json))
		return "v1." + p + "." + base64.RawURLEncoding.EncodeToString(mac(testSecret, "v1."+p))
	}
	tests := []struct {
		name, token, wantErr string
	}{
		{"valid", good, ""},
		{"15-character sub", Claims{Sub: "005000000000001", Org: testOrg, Iat: now.Unix(), Exp: now.Add(time.Minute).Unix()}.Sign(testSecret), ""},
		{"expired", at(-20*time.Minute, -6*time.Minute).Sign(testSecret), "expired"},
		{"expired within skew", at(-10*time.Minute, -30*time.Second).Sign(testSecret), ""},
		{"future iat", at(2*time.Minute, 5*time.Minute).Sign(testSecret), "future"},
		{"future iat within skew", at(30*time.Second, 5*time.Minute).Sign(testSecret), ""},
		{"lifetime too long", at(0, 16*time.Minute).Sign(testSecret), "lifetime"},
		{"exp before iat", at(0, -time.Second).Sign(testSecret), "before"},
		{"bad signature", at(0, time.Minute).Sign([]byte("other")), "signature does not match"},
		{"tampered payload", "v1." + strings.Split(at(0, 14*time.Minute).Sign(testSecret), ".")[1] + "." + sig, "signature does not match"},
		{"wrong version", "v2." + payload + "." + sig, "version"},
		{"two parts", "v1." + payload, "not v1"},
		{"padded signature", good + "=", "base64url"},
		{"empty", "", "not v1"},
		{"payload not json", raw("not json"), "payload"},
		{"unknown claim", raw(`{"sub":"005000000000001AAA","org":"00D000000000001AAA","iat":1800000000,"exp":1800000060,"admin":true}`), "payload"},
		{"sub not a user", Claims{Sub: "00D000000000001AAA", Org: testOrg, Iat: now.Unix(), Exp: now.Add(time.Minute).Unix()}.Sign(testSecret), "sub"},
		{"org missing", Claims{Sub: testUser, Iat: now.Unix(), Exp: now.Add(time.Minute).Unix()}.Sign(testSecret), "org"},
		{"no iat", Claims{Sub: testUser, Org: testOrg, Exp: now.Add(time.Minute).Unix()}.Sign(testSecret), "iat"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Verify(testSecret, tt.token, now)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if len(c.Sub) != 18 || c.Org != testOrg {
					t.Errorf("claims = %+v, want an 18-character sub and org %s", c, testOrg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Verify error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	if _, err := Verify(nil, good, now); err == nil {
		t.Error("Verify without a secret must fail")
	}
}

func TestMint(t *testing.T) {
	tok := Mint(testSecret, testUser, testOrg, 5*time.Minute)
	c, err := Verify(testSecret, tok, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if c.Sub != testUser || c.Exp-c.Iat != 300 {
		t.Errorf("claims = %+v", c)
	}
}

func FuzzVerify(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	f.Add(Claims{Sub: testUser, Org: testOrg, Iat: now.Unix(), Exp: now.Add(time.Minute).Unix()}.Sign(testSecret))
	f.Add("v1..")
	f.Add("v1.e30.")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := Verify(testSecret, tok, now)
		if err != nil {
			return
		}
		if c.Exp <= c.Iat || len(c.Sub) != 18 || !strings.HasPrefix(c.Sub, "005") {
			t.Fatalf("accepted bad claims %+v", c)
		}
		if again := c.Sign(testSecret); again == "" {
			t.Fatal("re-signing failed")
		}
	})
}
