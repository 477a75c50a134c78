package salesforce

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
)

// APIError is an error the REST API answered in its envelope.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("salesforce: %d %s: %s", e.Status, e.Code, e.Message)
}

// maxResponse bounds a REST response body.
const maxResponse = 32 << 20

// get calls a REST path on the instance and decodes the JSON answer into out. A 401 logs in
// again and retries once; throttling becomes a RetryAfterError.
func (c *Connector) get(ctx context.Context, path string, q url.Values, out any) error {
	for attempt := 0; ; attempt++ {
		tok, inst, _, err := c.auth.session(ctx)
		if err != nil {
			return err
		}
		u := inst + path
		if len(q) > 0 {
			u += "?" + q.Encode()
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Accept", "application/json")
		resp, err := c.http.Do(req)
		if err != nil {
			return fmt.Errorf("salesforce: GET %s: %w", path, err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("salesforce: GET %s: %w", path, err)
		}
		if resp.StatusCode == http.StatusUnauthorized && attempt == 0 {
			c.auth.invalidate(tok)
			continue
		}
		if resp.StatusCode/100 != 2 {
			return c.errorOf(resp, body)
		}
		if err := json.Unmarshal(body, out); err != nil {
			return fmt.Errorf("salesforce: GET %s: decoding: %w", path, err)
		}
		return nil
	}
}

func (c *Connector) errorOf(resp *http.Response, body []byte) error {
	e := &APIError{Status: resp.StatusCode, Code: http.StatusText(resp.StatusCode)}
	var env []struct {
		Message   string `json:"message"`
		ErrorCode string `json:"errorCode"`
	}
	if json.Unmarshal(body, &env) == nil && len(env) > 0 {
		e.Code, e.Message = env[0].ErrorCode, env[0].Message
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		wait := time.Second
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			wait = time.Duration(s) * time.Second
		}
		return &connector.RetryAfterError{After: wait, Err: e}
	case e.Code == "REQUEST_LIMIT_EXCEEDED":
		return &connector.RetryAfterError{After: time.Minute, Err: e}
	case e.Code == "MALFORMED_QUERY" || e.Code == "INVALID_FIELD" || e.Code == "INVALID_TYPE":
		return &connector.PermanentError{Err: e}
	}
	return e
}

// queryAll runs a SOQL query and appends every record of every page to *out.
func queryAll[T any](ctx context.Context, c *Connector, soql string, out *[]T) error {
	path := "/services/data/v" + c.apiVersion + "/query"
	q := url.Values{"q": {soql}}
	for {
		var page struct {
			Done           bool   `json:"done"`
			NextRecordsURL string `json:"nextRecordsUrl"`
			Records        []T    `json:"records"`
		}
		if err := c.get(ctx, path, q, &page); err != nil {
			return err
		}
		*out = append(*out, page.Records...)
		if page.Done || page.NextRecordsURL == "" {
			return nil
		}
		if !strings.HasPrefix(page.NextRecordsURL, "/services/data/") {
			return fmt.Errorf("salesforce: unexpected nextRecordsUrl %q", page.NextRecordsURL)
		}
		path, q = page.NextRecordsURL, nil
	}
}
