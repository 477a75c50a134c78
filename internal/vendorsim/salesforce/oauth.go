package salesforce

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
	"net/http"
	"strconv"
	"strings"
	"time"
)

// session is an issued access token.
type session struct {
	userID  string
	expires time.Time
}

// oauthError writes Salesforce's OAuth error body.
func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// baseURL is the scheme and host the client reached us on: the instance URL.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// token serves POST /services/oauth2/token: client credentials, JWT bearer and refresh token.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "must use HTTP POST")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "malformed request body")
		return
	}
	clientID, secret, basic := r.BasicAuth()
	if !basic {
		clientID, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	var userID string
	switch gt := r.PostForm.Get("grant_type"); gt {
	case "client_credentials":
		if clientID != s.cfg.ClientID {
			oauthError(w, http.StatusBadRequest, "invalid_client_id", "client identifier invalid")
			return
		}
		if !hmac.Equal([]byte(secret), []byte(s.cfg.ClientSecret)) {
			oauthError(w, http.StatusBadRequest, "invalid_client", "invalid client credentials")
			return
		}
		userID = s.org.adminID
	case "urn:ietf:params:oauth:grant-type:jwt-bearer":
		uid, err := s.verifyAssertion(r.PostForm.Get("assertion"))
		if err != nil {
			s.log.Info("jwt bearer refused", "reason", err.Error())
			oauthError(w, http.StatusBadRequest, "invalid_grant", err.Error())
			return
		}
		userID = uid
	case "refresh_token":
		if clientID != s.cfg.ClientID {
			oauthError(w, http.StatusBadRequest, "invalid_client_id", "client identifier invalid")
			return
		}
		if secret != "" && !hmac.Equal([]byte(secret), []byte(s.cfg.ClientSecret)) {
			oauthError(w, http.StatusBadRequest, "invalid_client", "invalid client credentials")
			return
		}
		if s.cfg.RefreshToken == "" || !hmac.Equal([]byte(r.PostForm.Get("refresh_token")), []byte(s.cfg.RefreshToken)) {
			oauthError(w, http.StatusBadRequest, "invalid_grant", "expired access/refresh token")
			return
		}
		userID = s.org.adminID
	case "":
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant type not supported")
		return
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant type not supported")
		return
	}
	tok := s.issue(userID)
	issued := strconv.FormatInt(s.now().UnixMilli(), 10)
	base := baseURL(r)
	id := fmt.Sprintf("%s/id/%s/%s", base, s.org.id, userID)
	mac := hmac.New(sha256.New, []byte(s.cfg.ClientSecret))
	mac.Write([]byte(id + issued))
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-cache,must-revalidate,max-age=0,no-store,private")
	_ = json.NewEncoder(w).Encode(map[string]string{
		"access_token": tok, "signature": base64.StdEncoding.EncodeToString(mac.Sum(nil)), "scope": "api",
		"instance_url": base, "id": id, "token_type": "Bearer", "issued_at": issued,
	})
}

// issue creates an access token in Salesforce's "<orgId>!<session>" shape.
func (s *Server) issue(userID string) string {
	tok := s.org.id[:15] + "!AQ" + strings.ReplaceAll(newUUID()+newUUID(), "-", "")
	s.mu.Lock()
	s.sessions[tok] = session{userID: userID, expires: s.now().Add(s.cfg.SessionTimeout)}
	s.mu.Unlock()
	return tok
}

// authorize returns the session of a bearer token, or false when it is missing, unknown or
// expired.
func (s *Server) authorize(tok string) (session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.sessions[tok]
	if !ok {
		return session{}, false
	}
	if !s.now().Before(ss.expires) {
		delete(s.sessions, tok)
		return session{}, false
	}
	return ss, true
}

// ExpireTokens invalidates every issued access token, as a session timeout or a revoked session
// does; clients must authenticate again.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	s.sessions = map[string]session{}
	s.mu.Unlock()
}

// verifyAssertion checks a JWT bearer assertion: RS256 signed by the configured certificate's
// key, iss the client id, sub an existing username, aud the login URL, exp in the future.
func (s *Server) verifyAssertion(assertion string) (string, error) {
	if s.jwtKey == nil {
		return "", errors.New("user hasn't approved this consumer")
	}
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return "", errors.New("invalid assertion")
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	if err := decodeSegment(parts[0], &hdr); err != nil || hdr.Alg != "RS256" {
		return "", errors.New("invalid assertion")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return "", errors.New("invalid assertion")
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(s.jwtKey, crypto.SHA256, sum[:], sig) != nil {
		return "", errors.New("invalid assertion")
	}
	var claims struct {
		Iss string          `json:"iss"`
		Sub string          `json:"sub"`
		Aud json.RawMessage `json:"aud"`
		Exp int64           `json:"exp"`
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return "", errors.New("invalid assertion")
	}
	if claims.Iss != s.cfg.ClientID {
		return "", errors.New("invalid client identifier")
	}
	if !audienceOK(claims.Aud, s.cfg.Audiences) {
		return "", errors.New("audience is invalid")
	}
	if claims.Exp == 0 || !s.now().Before(time.Unix(claims.Exp, 0)) {
		return "", errors.New("expired authorization code")
	}
	s.org.mu.Lock()
	u, err := s.org.user(claims.Sub)
	s.org.mu.Unlock()
	if err != nil || claims.Sub == "" || !strings.EqualFold(u["Username"].(string), claims.Sub) {
		return "", errors.New("user hasn't approved this consumer")
	}
	return u["Id"].(string), nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func audienceOK(raw json.RawMessage, allowed []string) bool {
	var one string
	var many []string
	if json.Unmarshal(raw, &one) == nil {
		many = []string{one}
	} else if json.Unmarshal(raw, &many) != nil {
		return false
	}
	for _, a := range many {
		for _, ok := range allowed {
			if strings.TrimRight(a, "/") == strings.TrimRight(ok, "/") {
				return true
			}
		}
	}
	return false
}

// parseCertKey reads the RSA public key of a PEM certificate or public key.
func parseCertKey(pemBytes []byte) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("no PEM block in the JWT certificate")
	}
	var pub any
	switch block.Type {
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		pub = cert.PublicKey
	default:
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		pub = k
	}
	rk, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("the JWT certificate's key is not RSA")
	}
	return rk, nil
}
