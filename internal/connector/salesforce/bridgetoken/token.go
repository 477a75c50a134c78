// Package bridgetoken is the token format of the Salesforce Omni-Channel bridge: what a
// Salesforce org mints for an agent's console and the service verifies. The service's bridge
// handler and the Salesforce simulator's console both use it.
package bridgetoken

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
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
	// tokenVersion prefixes every token.
	tokenVersion = "v1"
)

// Claims is the payload of a bridge token: who the bridge acts for and when the token is valid.
type Claims struct {
	// Sub is the Salesforce user id (005…).
	Sub string `json:"sub"`
	// Org is the Salesforce org id (00D…).
	Org string `json:"org"`
	// Iat is when the token was issued, in Unix seconds.
	Iat int64 `json:"iat"`
	// Exp is when the token expires, in Unix seconds.
	Exp int64 `json:"exp"`
}

// Sign returns the token "v1.<payload>.<sig>" for the claims under secret.
func (c Claims) Sign(secret []byte) string {
	b, _ := json.Marshal(c) // a struct of strings and integers always marshals
	signed := tokenVersion + "." + base64.RawURLEncoding.EncodeToString(b)
	return signed + "." + base64.RawURLEncoding.EncodeToString(mac(secret, signed))
}

// Mint returns a token for Salesforce user sub of org, valid from now for ttl (tokens with a ttl
// over MaxTokenLifetime do not verify). The Apex controller mints the same tokens in
// production; tests and the simulator use Mint.
func Mint(secret []byte, sub, org string, ttl time.Duration) string {
	now := time.Now()
	return Claims{Sub: sub, Org: org, Iat: now.Unix(), Exp: now.Add(ttl).Unix()}.Sign(secret)
}

// Verify checks token against secret at time now and returns its claims: the signature must
// match, exp must be in the future, iat not in the future and exp at most MaxTokenLifetime
// after iat, each with ClockSkew of allowance; sub must be a user id and org an org id.
func Verify(secret []byte, token string, now time.Time) (Claims, error) {
	var c Claims
	if len(secret) == 0 {
		return c, errors.New("no bridge secret is configured")
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return c, errors.New("token is not v1.<payload>.<signature>")
	}
	if parts[0] != tokenVersion {
		return c, fmt.Errorf("token version %q is not supported (want v1)", parts[0])
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return c, errors.New("token signature is not base64url without padding")
	}
	if !hmac.Equal(sig, mac(secret, parts[0]+"."+parts[1])) {
		return c, errors.New("token signature does not match")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return c, errors.New("token payload is not base64url without padding")
	}
	dec := json.NewDecoder(strings.NewReader(string(payload)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Claims{}, fmt.Errorf("token payload: %v", err)
	}
	switch {
	case !sfid.Is(c.Sub, "005"):
		return Claims{}, fmt.Errorf("token sub %q is not a Salesforce user id", c.Sub)
	case !sfid.Is(c.Org, "00D"):
		return Claims{}, fmt.Errorf("token org %q is not a Salesforce org id", c.Org)
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
	c.Org = sfid.Normalize(c.Org)
	return c, nil
}

func mac(secret []byte, signed string) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(signed))
	return h.Sum(nil)
}
