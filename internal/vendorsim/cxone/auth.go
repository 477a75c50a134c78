package cxone

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The discovery document's names for this tenant: the Agent SDK builds some hostnames from them
// (https://api-{cluster}.{acdDomain}), which a test harness points back at the simulator.
const (
	area      = "na1"
	cluster   = "c32"
	domain    = "niceincontact.com"
	uhDomain  = "nice-incontact.com"
	authScope = "openid"
)

func (s *Server) handleOpenID(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		s.apiError(w, http.StatusMethodNotAllowed, "Method Not Allowed", "GET only.")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                s.url,
		"authorization_endpoint":                s.url + "/auth/authorize",
		"token_endpoint":                        s.url + "/auth/token",
		"jwks_uri":                              s.url + "/auth/jwks",
		"end_session_endpoint":                  s.url + "/auth/logout",
		"response_types_supported":              []string{"code"},
		"grant_types_supported":                 []string{"authorization_code", "refresh_token", "password", "urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      []string{authScope},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post", "none"},
		"display_values_supported":              []string{"page", "popup"},
		"code_challenge_methods_supported":      []string{"S256"},
	})
}

// handleDiscovery is GET /.well-known/cxone-configuration?tenantId=.
func (s *Server) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	q, _ := params(r)
	if id := q.Get("tenantid"); !strings.EqualFold(id, s.t.id) {
		s.apiError(w, http.StatusNotFound, "Not Found", "Unknown tenant "+strconv.Quote(id)+".")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"private": false, "area": area, "cluster": cluster, "domain": domain, "acdDomain": domain,
		"uhDomain": uhDomain, "api_endpoint": s.url, "ui_endpoint": s.url, "auth_endpoint": s.url,
		"tenantId": s.t.id,
	})
}

func (s *Server) handleJWKS(w http.ResponseWriter, _ *http.Request) {
	pub := s.key.PublicKey
	writeJSON(w, http.StatusOK, map[string]any{"keys": []any{map[string]any{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": s.kid,
		"n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes()),
	}}})
}

// handleAuthorize is the authorization endpoint. There is no login page: the person is the
// agent named by login_hint (email or agent id), Ana by default, and the browser is sent back
// to redirect_uri with a code at once.
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	q, _ := params(r)
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || redirect.Scheme == "" || q.Get("client_id") == "" {
		s.apiError(w, http.StatusBadRequest, "invalid_request", "client_id and an absolute redirect_uri are required.")
		return
	}
	if q.Get("response_type") != "code" || q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256" {
		s.apiError(w, http.StatusBadRequest, "invalid_request", "response_type=code with an S256 code_challenge is required.")
		return
	}
	s.mu.Lock()
	user := s.t.agents[0]
	if h := q.Get("login_hint"); h != "" {
		user = s.t.findUser(h)
	}
	if user == nil {
		s.mu.Unlock()
		s.apiError(w, http.StatusBadRequest, "invalid_request", "login_hint names no user.")
		return
	}
	code := randomHex(16)
	s.codes[code] = &authCode{user: user, challenge: q.Get("code_challenge"), redirect: q.Get("redirect_uri"),
		clientID: q.Get("client_id"), expires: s.cfg.Now().Add(5 * time.Minute)}
	s.mu.Unlock()
	back := redirect.Query()
	back.Set("code", code)
	if st := q.Get("state"); st != "" {
		back.Set("state", st)
	}
	redirect.RawQuery = back.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

// tokenError writes OAuth's error shape.
func tokenError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// handleToken is POST /auth/token: password (an access key), authorization_code (PKCE),
// refresh_token and token-exchange.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		tokenError(w, http.StatusMethodNotAllowed, "invalid_request", "POST only.")
		return
	}
	q, err := params(r)
	if err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	clientID, clientSecret, basic := r.BasicAuth()
	if !basic {
		clientID, clientSecret = q.Get("client_id"), q.Get("client_secret")
	}
	now := s.cfg.Now()
	var user *agent
	s.mu.Lock()
	defer s.mu.Unlock()
	switch q.Get("grant_type") {
	case "password":
		if !equal(clientID, s.cfg.ClientID) || !equal(clientSecret, s.cfg.ClientSecret) {
			tokenError(w, http.StatusUnauthorized, "invalid_client", "Client authentication failed.")
			return
		}
		if !equal(q.Get("username"), s.cfg.AccessKeyID) || !equal(q.Get("password"), s.cfg.AccessKeySecret) {
			tokenError(w, http.StatusBadRequest, "invalid_grant", "The access key is invalid.")
			return
		}
		user = s.t.integrator
	case "authorization_code":
		c := s.codes[q.Get("code")]
		delete(s.codes, q.Get("code"))
		if c == nil || now.After(c.expires) || c.clientID != clientID {
			tokenError(w, http.StatusBadRequest, "invalid_grant", "The authorization code is invalid or has expired.")
			return
		}
		sum := sha256.Sum256([]byte(q.Get("code_verifier")))
		if base64.RawURLEncoding.EncodeToString(sum[:]) != c.challenge {
			tokenError(w, http.StatusBadRequest, "invalid_grant", "The code_verifier does not match the code_challenge.")
			return
		}
		user = c.user
	case "refresh_token":
		t := s.tokens[q.Get("refresh_token")]
		if t == nil || !t.refresh || now.After(t.expires) {
			tokenError(w, http.StatusBadRequest, "invalid_grant", "The refresh token is invalid or has expired.")
			return
		}
		user = t.user
	case "urn:ietf:params:oauth:grant-type:token-exchange":
		t := s.tokens[q.Get("subject_token")]
		if t == nil || t.refresh || now.After(t.expires) {
			tokenError(w, http.StatusBadRequest, "invalid_grant", "The subject token is invalid or has expired.")
			return
		}
		user = t.user
	default:
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type", "Unsupported grant type.")
		return
	}
	for k, t := range s.tokens {
		if now.After(t.expires.Add(time.Hour)) {
			delete(s.tokens, k)
		}
	}
	access := s.sign(map[string]any{"iss": s.url, "sub": "user:" + user.UserID, "aud": clientID,
		"iat": now.Unix(), "exp": now.Add(s.cfg.TokenTTL).Unix(), "jti": randomHex(12), "tenantId": s.t.id,
		"icAgentId": strconv.Itoa(user.ID), "icBUId": strconv.Itoa(s.t.busNo)})
	refresh := randomHex(24)
	s.tokens[access] = &token{user: user, expires: now.Add(s.cfg.TokenTTL)}
	s.tokens[refresh] = &token{user: user, refresh: true, expires: now.Add(24 * time.Hour)}
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": access, "token_type": "Bearer", "expires_in": int(s.cfg.TokenTTL / time.Second),
		"refresh_token": refresh, "id_token": s.idToken(user, clientID, now),
		"issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
	})
}

// idToken is the RS256 id_token CXone issues, with the claims the Agent SDK reads.
func (s *Server) idToken(u *agent, aud string, now time.Time) string {
	claims := map[string]any{
		"iss": s.url, "sub": "user:" + u.UserID, "aud": aud, "iat": now.Unix(), "exp": now.Add(s.cfg.TokenTTL).Unix(),
		"tenantId": s.t.id, "icBUId": s.t.busNo, "icAgentId": u.ID, "icClusterId": cluster, "area": area,
		"name": u.Email, "given_name": u.FirstName, "family_name": u.LastName, "email": u.Email, "userId": u.UserID,
	}
	if u.Team != nil {
		claims["teamId"] = u.Team.ID
	}
	return s.sign(claims)
}

// sign makes an RS256 JWT of claims with the tenant's key.
func (s *Server) sign(claims map[string]any) string {
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": s.kid})
	c, _ := json.Marshal(claims)
	in := b64(h) + "." + b64(c)
	sum := sha256.Sum256([]byte(in))
	sig, err := rsa.SignPKCS1v15(nil, s.key, crypto.SHA256, sum[:])
	if err != nil {
		panic(err) // a 2048-bit key signs any digest
	}
	return in + "." + b64(sig)
}

// handleWhoami is POST /incontactauthorizationserver/token/whoami {"token"}.
func (s *Server) handleWhoami(w http.ResponseWriter, r *http.Request) {
	q, err := params(r)
	if err != nil {
		s.apiError(w, http.StatusBadRequest, "Bad Request", err.Error())
		return
	}
	tok := q.Get("token")
	if tok == "" {
		if a := r.Header.Get("Authorization"); len(a) > 7 {
			tok = a[7:]
		}
	}
	s.mu.Lock()
	t := s.tokens[tok]
	s.mu.Unlock()
	if t == nil || t.refresh || !s.cfg.Now().Before(t.expires) {
		s.apiError(w, http.StatusUnauthorized, "Unauthorized", "The token is invalid or has expired.")
		return
	}
	teamID := 0
	if t.user.Team != nil {
		teamID = t.user.Team.ID
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"resource_server_base_uri": s.url + "/inContactAPI/", "refresh_token_server_uri": s.url + "/auth/token",
		"agent_id": t.user.ID, "team_id": teamID, "bus_no": s.t.busNo, "expires_in": int(t.expires.Sub(s.cfg.Now()) / time.Second),
		"iss": s.url, "sub": "user:" + t.user.UserID,
	})
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
