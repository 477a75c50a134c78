package bridgetoken

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"
)

// The bridge's test key pair (bridge/salesforce/test/fixtures): the Node tests and the Apex
// test pin the same vector, so Apex, JavaScript and Go agree byte for byte.
const fixtures = "../../../../bridge/salesforce/test/fixtures/"

// knownVector is the token for vectorClaims signed with test-key.pem (RS256 is deterministic).
const knownVector = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9." +
	"eyJpc3MiOiIwMEQwMDAwMDAwMDAwMDFFQUEiLCJzdWIiOiIwMDUwMDAwMDAwMDAwMDFBQUEiLCJhdWQiOiJvbW5pcHJlc2VuY2UtYnJpZGdlIiwiaWF0IjoxNzAwMDAwMDAwLCJleHAiOjE3MDAwMDA2MDB9." +
	"elfkWwaG9TNJY_-XwE3ykcPe15xEY86RS8v0o8KdtPkL8dWlQoYY--9O1qWrJxvJxFecVENGmRsVEXhTd5XVaaPFyQOXBiyX_PTlkkyY4guJjEBye5SgTRkD1OkNLzXzHPrK5wctDLPKRQYBBoz96PL2PBsGSyLLk18EoL_NuxGrkLDlk4sKIuwMecLadBmHZmUWnK_YZjeJLQglp-BPj31Kv3Ev7UUW0BBvuyMq_aNn5SnoDTIdmrn_yrfk33N3g7d85sO_nRnGED-Uoq8mBwLvEl5Tn121r386EIBVSAkdwjumdebRXg3yxYZho8WNtVr-0zX8rWbg3PYYF1EdZg"

var vectorClaims = Claims{Iss: "00D000000000001EAA", Sub: "005000000000001AAA", Aud: Audience, Iat: 1700000000, Exp: 1700000600}

const (
	testUser = "005000000000001AAA"
	testOrg  = "00D000000000001EAA"
)

var devSecret = []byte("bridge-test-secret")

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(fixtures + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testSigner(t testing.TB, name string) *Signer {
	t.Helper()
	s, err := ParseSigner(readFixture(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testVerifier(t testing.TB, secret []byte) *Verifier {
	t.Helper()
	certs, err := ParseCertificates(readFixture(t, "test-cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(certs, secret)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestKnownVector(t *testing.T) {
	tok, err := testSigner(t, "test-key.pem").Sign(vectorClaims)
	if err != nil {
		t.Fatal(err)
	}
	if tok != knownVector {
		t.Fatalf("token\n%s\nwant\n%s", tok, knownVector)
	}
	c, err := testVerifier(t, nil).Verify(tok, time.Unix(1700000100, 0))
	if err != nil || c != vectorClaims {
		t.Fatalf("Verify = %+v, %v", c, err)
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	org, other := testSigner(t, "test-key.pem"), testSigner(t, "other-key.pem")
	dev, err := NewDevSigner(devSecret)
	if err != nil {
		t.Fatal(err)
	}
	at := func(iat, exp time.Duration) Claims {
		return Claims{Iss: testOrg, Sub: testUser, Aud: Audience, Iat: now.Add(iat).Unix(), Exp: now.Add(exp).Unix()}
	}
	sign := func(s *Signer, c Claims) string {
		tok, err := s.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	with := func(f func(*Claims)) Claims {
		c := at(0, time.Minute)
		f(&c)
		return c
	}
	good := sign(org, at(0, 10*time.Minute))
	parts := strings.Split(good, ".")
	// raw signs arbitrary header and claims JSON with the org's key.
	raw := func(hdr, claims string) string {
		signed := b64([]byte(hdr)) + "." + b64([]byte(claims))
		sum := sha256.Sum256([]byte(signed))
		sig, err := rsa.SignPKCS1v15(nil, org.key, crypto.SHA256, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		return signed + "." + b64(sig)
	}
	// The certificate's public key, used as an HMAC secret: the classic algorithm confusion.
	pub, _ := x509.MarshalPKIXPublicKey(&org.key.PublicKey)
	confused := func() string {
		signed := b64([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + parts[1]
		return signed + "." + b64(mac(pub, signed))
	}()
	validClaims, _ := json.Marshal(at(0, time.Minute))

	tests := []struct {
		name, token, wantErr string
		dev                  bool // verify with the development secret as well
	}{
		{"valid", good, "", false},
		{"15-character ids", sign(org, with(func(c *Claims) { c.Sub, c.Iss = "005000000000001", "00D000000000001" })), "", false},
		{"expired", sign(org, at(-20*time.Minute, -6*time.Minute)), "expired", false},
		{"expired within skew", sign(org, at(-10*time.Minute, -30*time.Second)), "", false},
		{"future iat", sign(org, at(2*time.Minute, 5*time.Minute)), "future", false},
		{"future iat within skew", sign(org, at(30*time.Second, 5*time.Minute)), "", false},
		{"lifetime too long", sign(org, at(0, 16*time.Minute)), "lifetime", false},
		{"exp before iat", sign(org, at(0, -time.Second)), "before", false},
		{"another org's key", sign(other, at(0, time.Minute)), "does not match the bridge certificate", false},
		{"tampered claims", parts[0] + "." + strings.Split(sign(org, at(0, 14*time.Minute)), ".")[1] + "." + parts[2], "does not match", false},
		{"development token without dev mode", sign(dev, at(0, time.Minute)), "accepts only certificate-signed", false},
		{"development token in dev mode", sign(dev, at(0, time.Minute)), "", true},
		{"dev token under another secret", func() string { d, _ := NewDevSigner([]byte("other")); return sign(d, at(0, time.Minute)) }(), "development secret", true},
		{"algorithm confusion", confused, "accepts only certificate-signed", false},
		{"algorithm none", b64([]byte(`{"alg":"none"}`)) + "." + parts[1] + ".", "not supported", false},
		{"algorithm RS512", raw(`{"alg":"RS512"}`, string(validClaims)), "not supported", false},
		{"crit header", raw(`{"alg":"RS256","crit":["exp"]}`, string(validClaims)), "header", false},
		{"header with kid", raw(`{"alg":"RS256","kid":"2026"}`, string(validClaims)), "", false},
		{"wrong audience", sign(org, with(func(c *Claims) { c.Aud = "https://login.salesforce.com" })), "audience", false},
		{"no audience", sign(org, with(func(c *Claims) { c.Aud = "" })), "audience", false},
		{"audience list", raw(`{"alg":"RS256"}`, `{"iss":"00D000000000001EAA","sub":"005000000000001AAA","aud":["omnipresence-bridge"],"iat":1800000000,"exp":1800000060}`), "claims", false},
		{"unknown claim", raw(`{"alg":"RS256"}`, `{"iss":"00D000000000001EAA","sub":"005000000000001AAA","aud":"omnipresence-bridge","iat":1800000000,"exp":1800000060,"admin":true}`), "claims", false},
		{"claims not json", raw(`{"alg":"RS256"}`, "not json"), "claims", false},
		{"sub not a user", sign(org, with(func(c *Claims) { c.Sub = testOrg })), "sub", false},
		{"iss missing", sign(org, with(func(c *Claims) { c.Iss = "" })), "iss", false},
		{"no iat", sign(org, with(func(c *Claims) { c.Iat = 0 })), "iat", false},
		{"two parts", parts[0] + "." + parts[1], "compact JWS", false},
		{"padded signature", good + "=", "base64url", false},
		{"empty", "", "compact JWS", false},
		{"old v1 format", "v1." + parts[1] + "." + parts[2], "header", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var secret []byte
			if tt.dev {
				secret = devSecret
			}
			c, err := testVerifier(t, secret).Verify(tt.token, now)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if len(c.Sub) != 18 || c.Iss != testOrg {
					t.Errorf("claims = %+v, want an 18-character sub and iss %s", c, testOrg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Verify error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestKeysAndCertificates(t *testing.T) {
	if _, err := NewVerifier(nil, nil); err == nil {
		t.Error("a verifier with neither certificate nor secret must be refused")
	}
	if _, err := ParseCertificates(readFixture(t, "test-key.pem")); err == nil || !strings.Contains(err.Error(), "private key") {
		t.Errorf("a key given as the certificate: %v", err)
	}
	if _, err := ParseCertificates([]byte("nothing")); err == nil {
		t.Error("no certificate accepted")
	}
	if _, err := ParseSigner(readFixture(t, "test-cert.pem")); err == nil {
		t.Error("a certificate accepted as the private key")
	}
	if _, err := NewDevSigner(nil); err == nil {
		t.Error("an empty development secret accepted")
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewRSASigner(small); err == nil {
		t.Error("a 1024-bit key accepted")
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "small"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &small.PublicKey, small)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	if _, err := NewVerifier([]*x509.Certificate{cert}, nil); err == nil {
		t.Error("a 1024-bit certificate accepted")
	}
	// A rotation: the file holds the old and the new certificate; tokens of both verify.
	both := append(readFixture(t, "other-cert.pem"), readFixture(t, "test-cert.pem")...)
	certs, err := ParseCertificates(both)
	if err != nil || len(certs) != 2 {
		t.Fatalf("two certificates: %d, %v", len(certs), err)
	}
	v, _ := NewVerifier(certs, nil)
	for _, key := range []string{"test-key.pem", "other-key.pem"} {
		tok, err := testSigner(t, key).Mint(testOrg, testUser, 5*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		c, err := v.Verify(tok, time.Now())
		if err != nil || c.Exp-c.Iat != 300 || c.Aud != Audience {
			t.Errorf("%s: %+v, %v", key, c, err)
		}
	}
	if v.Dev() || !testVerifier(t, devSecret).Dev() {
		t.Error("Dev reports the wrong mode")
	}
}

func FuzzVerify(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	s := testSigner(f, "test-key.pem")
	tok, _ := s.Sign(Claims{Iss: testOrg, Sub: testUser, Aud: Audience, Iat: now.Unix(), Exp: now.Add(time.Minute).Unix()})
	f.Add(tok)
	f.Add("..")
	f.Add(b64([]byte(`{"alg":"RS256"}`)) + ".e30.")
	f.Add(base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256"}`)) + ".e30.AA")
	v := testVerifier(f, devSecret)
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := v.Verify(tok, now)
		if err != nil {
			return
		}
		if c.Exp <= c.Iat || len(c.Sub) != 18 || !strings.HasPrefix(c.Sub, "005") || c.Aud != Audience {
			t.Fatalf("accepted bad claims %+v", c)
		}
	})
}

// BenchmarkVerify measures what every bridge request pays to check its token.
func BenchmarkVerify(b *testing.B) {
	now := time.Now()
	dev, _ := NewDevSigner(devSecret)
	for _, s := range []struct {
		name   string
		signer *Signer
	}{{"RS256", testSigner(b, "test-key.pem")}, {"HS256", dev}} {
		tok, err := s.signer.Mint(testOrg, testUser, 10*time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		v := testVerifier(b, devSecret)
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(tok, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
