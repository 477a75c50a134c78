package salesforce

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/oauth2"
)

// authenticator holds the current access token with its instance URL and org id. Salesforce
// tokens carry no expiry, so a token is used until a call answers 401, which invalidates it.
type authenticator struct {
	fetch func(context.Context) (*oauth2.Token, error)

	mu       sync.Mutex
	token    string
	instance string
	orgID    string
}

// session returns a valid token, fetching one when none is held.
func (a *authenticator) session(ctx context.Context) (token, instance, orgID string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token != "" {
		return a.token, a.instance, a.orgID, nil
	}
	t, err := a.fetch(ctx)
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode != "" {
			// The body names the OAuth error; the token request itself is never logged.
			return "", "", "", fmt.Errorf("salesforce login refused: %s (%s)", re.ErrorCode, re.ErrorDescription)
		}
		return "", "", "", fmt.Errorf("salesforce login: %w", err)
	}
	inst, _ := t.Extra("instance_url").(string)
	id, _ := t.Extra("id").(string)
	if inst == "" {
		return "", "", "", errors.New("salesforce login: the token response has no instance_url")
	}
	a.token, a.instance = t.AccessToken, strings.TrimRight(inst, "/")
	// The identity URL ends in /id/<orgId>/<userId>.
	if parts := strings.Split(id, "/"); len(parts) >= 2 {
		a.orgID = parts[len(parts)-2]
	}
	return a.token, a.instance, a.orgID, nil
}

// invalidate drops token if it is still the current one, so the next call logs in again.
func (a *authenticator) invalidate(token string) {
	a.mu.Lock()
	if a.token == token {
		a.token = ""
	}
	a.mu.Unlock()
}

// checkKey reports whether pemBytes hold an RSA private key (PKCS #1 or PKCS #8).
func checkKey(pemBytes []byte) error {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return errors.New("no PEM block")
	}
	if _, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return errors.New("not an RSA private key in PKCS #1 or PKCS #8 form")
	}
	if _, ok := k.(interface{ Size() int }); !ok {
		return errors.New("not an RSA private key")
	}
	return nil
}
