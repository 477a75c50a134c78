// Package bridgetoken is the token format of the Salesforce Omni-Channel bridge: what a
// Salesforce org mints for an agent's console and the service verifies. The service's bridge
// handler and the Salesforce simulator's console both use it.
//
// A token is a compact JWS (RFC 7515) over the claims {"iss": org id, "sub": user id,
// "aud": "omnipresence-bridge", "iat", "exp"}. In production it is signed RS256 in Apex with
// Crypto.signWithCertificate('RSA-SHA256', …) and a certificate whose private key never leaves
// Salesforce; the service holds only the certificate. A development mode signs HS256 with a
// shared secret; anyone who can read that secret can act as any agent, so it is for local work
// only.
package bridgetoken

import (
	"crypto"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector/salesforce/sfid"
)

// Token limits of the wire contract.
const (
	// MaxTokenLifetime is the longest exp − iat a token may have.
	MaxTokenLifetime = 15 * time.Minute
	// ClockSkew is how far the minting clock may be off the service's.
	ClockSkew = 60 * time.Second
	// Audience is the aud claim of every bridge token: a token signed with the same
	// certificate for another purpose is not a bridge token.
	Audience = "omnipresence-bridge"
	// MinRSABits is the smallest RSA key the service accepts.
	MinRSABits = 2048
)

// Algorithms of the JWS header.
const (
	// AlgRS256 is RSASSA-PKCS1-v1_5 with SHA-256, what Apex's 'RSA-SHA256' produces.
	AlgRS256 = "RS256"
	// AlgHS256 is HMAC-SHA256 under the development shared secret.
	AlgHS256 = "HS256"
)

// Claims is the payload of a bridge token: who the bridge acts for and when the token is valid.
type Claims struct {
	// Iss is the Salesforce org id (00D…) of the org that minted the token.
	Iss string `json:"iss"`
	// Sub is the Salesforce user id (005…).
	Sub string `json:"sub"`
	// Aud is Audience.
	Aud string `json:"aud"`
	// Iat is when the token was issued, in Unix seconds.
	Iat int64 `json:"iat"`
	// Exp is when the token expires, in Unix seconds.
	Exp int64 `json:"exp"`
}

// header is the JWS protected header.
type header struct {
	Alg string `json:"alg"`
	Typ string `json:"typ,omitempty"`
	Kid string `json:"kid,omitempty"`
}

// Signer mints bridge tokens, as the bridge's Apex controller does in a real org. Create it
// with NewRSASigner, NewDevSigner or ParseSigner.
type Signer struct {
	key    *rsa.PrivateKey
	secret []byte
}

// NewRSASigner signs RS256 with key, the way Apex signs with the org's certificate.
func NewRSASigner(key *rsa.PrivateKey) (*Signer, error) {
	if key == nil {
		return nil, errors.New("bridgetoken: no private key")
	}
	if key.N.BitLen() < MinRSABits {
		return nil, fmt.Errorf("bridgetoken: the RSA key has %d bits; use at least %d", key.N.BitLen(), MinRSABits)
	}
	return &Signer{key: key}, nil
}

// NewDevSigner signs HS256 with a shared secret (development mode only).
func NewDevSigner(secret []byte) (*Signer, error) {
	if len(secret) == 0 {
		return nil, errors.New("bridgetoken: the development secret is empty")
	}
	return &Signer{secret: append([]byte(nil), secret...)}, nil
}

// ParseSigner reads a PEM private key (PKCS#8 "PRIVATE KEY" or PKCS#1 "RSA PRIVATE KEY").
func ParseSigner(pemBytes []byte) (*Signer, error) {
	for rest := pemBytes; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("bridgetoken: no PEM private key (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY) found")
		}
		switch b.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("bridgetoken: private key: %w", err)
			}
			rk, ok := k.(*rsa.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("bridgetoken: the private key is %T; Salesforce certificates are RSA", k)
			}
			return NewRSASigner(rk)
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("bridgetoken: private key: %w", err)
			}
			return NewRSASigner(k)
		}
	}
}

// Dev reports whether the signer uses the development shared secret.
func (s *Signer) Dev() bool { return s.key == nil }

// Sign returns the compact JWS of c.
func (s *Signer) Sign(c Claims) (string, error) {
	h := header{Alg: AlgRS256, Typ: "JWT"}
	if s.Dev() {
		h.Alg = AlgHS256
	}
	hb, _ := json.Marshal(h) // strings only
	cb, _ := json.Marshal(c) // strings and integers only
	signed := b64(hb) + "." + b64(cb)
	var sig []byte
	if s.Dev() {
		sig = mac(s.secret, signed)
	} else {
		sum := sha256.Sum256([]byte(signed))
		var err error
		if sig, err = rsa.SignPKCS1v15(nil, s.key, crypto.SHA256, sum[:]); err != nil {
			return "", fmt.Errorf("bridgetoken: signing: %w", err)
		}
	}
	return signed + "." + b64(sig), nil
}

// Mint returns a token for Salesforce user of org, valid from now for ttl (tokens with a ttl
// over MaxTokenLifetime do not verify).
func (s *Signer) Mint(org, user string, ttl time.Duration) (string, error) {
	now := time.Now()
	return s.Sign(Claims{Iss: org, Sub: user, Aud: Audience, Iat: now.Unix(), Exp: now.Add(ttl).Unix()})
}

// Verifier checks bridge tokens. Create it with NewVerifier.
type Verifier struct {
	keys   []*rsa.PublicKey
	secret []byte
}

// NewVerifier accepts RS256 tokens signed by the key of any of certs and, when secret is not
// empty, HS256 tokens under secret (development mode). At least one of the two is required.
func NewVerifier(certs []*x509.Certificate, secret []byte) (*Verifier, error) {
	v := &Verifier{secret: append([]byte(nil), secret...)}
	for _, c := range certs {
		k, ok := c.PublicKey.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("bridgetoken: certificate %q has a %T key; Salesforce certificates are RSA", c.Subject.CommonName, c.PublicKey)
		}
		if k.N.BitLen() < MinRSABits {
			return nil, fmt.Errorf("bridgetoken: certificate %q has a %d-bit key; use at least %d", c.Subject.CommonName, k.N.BitLen(), MinRSABits)
		}
		v.keys = append(v.keys, k)
	}
	if len(v.keys) == 0 && len(v.secret) == 0 {
		return nil, errors.New("bridgetoken: a certificate or a development secret is required")
	}
	return v, nil
}

// ParseCertificates reads every PEM "CERTIFICATE" block of b (several during a rotation).
func ParseCertificates(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			if strings.Contains(blk.Type, "PRIVATE KEY") {
				return nil, errors.New("bridgetoken: the file holds a private key; give the service only the certificate")
			}
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("bridgetoken: certificate: %w", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("bridgetoken: no PEM certificate (BEGIN CERTIFICATE) found")
	}
	return out, nil
}

// Dev reports whether the verifier accepts development (shared-secret) tokens.
func (v *Verifier) Dev() bool { return len(v.secret) > 0 }

// Verify checks token at time now and returns its claims: the header's algorithm must be one
// the verifier was configured for and the signature must match; aud must be Audience; exp in
// the future, iat not in the future and exp at most MaxTokenLifetime after iat, each with
// ClockSkew of allowance; sub must be a user id and iss an org id. Ids come back in their
// 18-character form.
func (v *Verifier) Verify(token string, now time.Time) (Claims, error) {
	var c Claims
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return c, errors.New("token is not a compact JWS (<header>.<claims>.<signature>)")
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return c, errors.New("token header is not base64url without padding")
	}
	var h header
	if err := strictJSON(hb, &h); err != nil {
		return c, fmt.Errorf("token header: %v", err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return c, errors.New("token signature is not base64url without padding")
	}
	signed := parts[0] + "." + parts[1]
	switch h.Alg {
	case AlgRS256:
		if len(v.keys) == 0 {
			return c, errors.New("token is signed RS256 but the service has no bridge certificate (--bridge-cert-file)")
		}
		sum := sha256.Sum256([]byte(signed))
		ok := false
		for _, k := range v.keys {
			if rsa.VerifyPKCS1v15(k, crypto.SHA256, sum[:], sig) == nil {
				ok = true
				break
			}
		}
		if !ok {
			return c, errors.New("token signature does not match the bridge certificate")
		}
	case AlgHS256:
		if len(v.secret) == 0 {
			return c, errors.New("token is signed HS256 (development mode) but the service accepts only certificate-signed tokens")
		}
		if !hmac.Equal(sig, mac(v.secret, signed)) {
			return c, errors.New("token signature does not match the development secret")
		}
	default:
		return c, fmt.Errorf("token algorithm %q is not supported (want RS256)", h.Alg)
	}
	cb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return c, errors.New("token claims are not base64url without padding")
	}
	if err := strictJSON(cb, &c); err != nil {
		return Claims{}, fmt.Errorf("token claims: %v", err)
	}
	switch {
	case c.Aud != Audience:
		return Claims{}, fmt.Errorf("token audience %q is not %q", c.Aud, Audience)
	case !sfid.Is(c.Sub, "005"):
		return Claims{}, fmt.Errorf("token sub %q is not a Salesforce user id", c.Sub)
	case !sfid.Is(c.Iss, "00D"):
		return Claims{}, fmt.Errorf("token iss %q is not a Salesforce org id", c.Iss)
	case c.Iat == 0 || c.Exp == 0:
		return Claims{}, errors.New("token lacks iat or exp")
	case c.Exp <= c.Iat:
		return Claims{}, errors.New("token expires before it is issued")
	case time.Duration(c.Exp-c.Iat)*time.Second > MaxTokenLifetime:
		return Claims{}, fmt.Errorf("token lifetime %v exceeds %v", time.Duration(c.Exp-c.Iat)*time.Second, MaxTokenLifetime)
	case time.Unix(c.Iat, 0).After(now.Add(ClockSkew)):
		return Claims{}, errors.New("token is issued in the future")
	case !time.Unix(c.Exp, 0).After(now.Add(-ClockSkew)):
		return Claims{}, errors.New("token has expired")
	}
	c.Sub = sfid.Normalize(c.Sub)
	c.Iss = sfid.Normalize(c.Iss)
	return c, nil
}

func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mac(secret []byte, signed string) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(signed))
	return h.Sum(nil)
}
