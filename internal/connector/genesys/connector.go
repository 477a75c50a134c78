package genesys

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/presence"
)

// wire shapes ----------------------------------------------------------------------------

type presenceDefinition struct {
	ID             string            `json:"id"`
	Name           string            `json:"name"`
	LanguageLabels map[string]string `json:"languageLabels"`
	SystemPresence string            `json:"systemPresence"`
	Deactivated    bool              `json:"deactivated"`
}

type userPresence struct {
	// ID is the user's id in PATCH and bulk PUT answers; UserID in bulk GET answers.
	ID                 string `json:"id"`
	UserID             string `json:"userId"`
	PresenceDefinition struct {
		ID             string `json:"id"`
		SystemPresence string `json:"systemPresence"`
	} `json:"presenceDefinition"`
	ModifiedDate string `json:"modifiedDate"`
}

// systemPresenceKey normalises the three spellings ("On Queue", "OnQueue", "ON_QUEUE") to the
// events' one, "ON_QUEUE".
func systemPresenceKey(s string) string {
	k := strings.ToUpper(strings.NewReplacer(" ", "_").Replace(strings.TrimSpace(s)))
	if k == "ONQUEUE" {
		return "ON_QUEUE"
	}
	return k
}

var categories = map[string]presence.Category{
	"AVAILABLE": presence.CategoryAvailable, "ON_QUEUE": presence.CategoryOnQueue, "BUSY": presence.CategoryBusy,
	"AWAY": presence.CategoryAway, "BREAK": presence.CategoryBreak, "MEAL": presence.CategoryMeal,
	"MEETING": presence.CategoryMeeting, "TRAINING": presence.CategoryTraining, "OFFLINE": presence.CategoryOffline,
	"IDLE": presence.CategorySystem,
}

var restSpellings = map[string]string{
	"AVAILABLE": "Available", "ON_QUEUE": "On Queue", "BUSY": "Busy", "AWAY": "Away", "BREAK": "Break",
	"MEAL": "Meal", "MEETING": "Meeting", "TRAINING": "Training", "OFFLINE": "Offline", "IDLE": "Idle",
}

// Catalog lists the active presence definitions. Name is the label; SystemPresence is the REST
// spelling of the system presence behind it (secondary presences resolve to theirs). Idle is
// entered by Genesys only, so it is not settable; Offline is (an administrator may set anyone
// Offline through the presence API).
func (c *Client) Catalog(ctx context.Context) ([]presence.Status, error) {
	var resp struct {
		Entities []presenceDefinition `json:"entities"`
	}
	if err := c.doRetry(ctx, "GET", "/api/v2/presence/definitions", nil, &resp); err != nil {
		return nil, err
	}
	out := make([]presence.Status, 0, len(resp.Entities))
	for _, d := range resp.Entities {
		if d.Deactivated {
			continue
		}
		key := systemPresenceKey(d.SystemPresence)
		label := d.LanguageLabels["en_US"]
		if label == "" {
			label = d.Name
		}
		if label == "" {
			label = restSpellings[key]
		}
		cat, ok := categories[key]
		if !ok {
			cat = presence.CategorySystem
		}
		sp := restSpellings[key]
		if sp == "" {
			sp = d.SystemPresence
		}
		out = append(out, presence.Status{ID: d.ID, Name: label, Label: label, Category: cat,
			Settable: key != "IDLE" && ok, SystemPresence: sp})
	}
	return out, nil
}

// Accounts lists the org's users that have an email.
func (c *Client) Accounts(ctx context.Context) ([]presence.Account, error) {
	var out []presence.Account
	for page := 1; ; page++ {
		var resp struct {
			Entities []struct {
				ID    string `json:"id"`
				Name  string `json:"name"`
				Email string `json:"email"`
			} `json:"entities"`
			PageCount int `json:"pageCount"`
		}
		if err := c.doRetry(ctx, "GET", fmt.Sprintf("/api/v2/users?pageSize=500&pageNumber=%d", page), nil, &resp); err != nil {
			return nil, err
		}
		for _, u := range resp.Entities {
			if u.Email != "" {
				out = append(out, presence.Account{ID: u.ID, Email: u.Email, Name: u.Name})
			}
		}
		if page >= resp.PageCount || len(resp.Entities) == 0 {
			return out, nil
		}
	}
}

type presenceWrite struct {
	ID                 string      `json:"id,omitempty"`
	PresenceDefinition idReference `json:"presenceDefinition"`
	Primary            bool        `json:"primary"`
}

type idReference struct {
	ID string `json:"id"`
}

// receipt is the receipt of a write Genesys answered with the user's presence: its
// modifiedDate, which the presence event of the change carries too.
func receipt(p userPresence) connector.Receipt {
	r := connector.Receipt{Version: p.ModifiedDate}
	if t, err := time.Parse(time.RFC3339Nano, p.ModifiedDate); err == nil {
		r.At = t
	}
	return r
}

// SetStatus sets account's presence to the definition statusID.
func (c *Client) SetStatus(ctx context.Context, account, statusID string) (connector.Receipt, error) {
	var got userPresence
	err := c.do(ctx, "PATCH", "/api/v2/users/"+url.PathEscape(account)+"/presences/purecloud",
		presenceWrite{PresenceDefinition: idReference{ID: statusID}, Primary: true}, &got)
	if err != nil {
		return connector.Receipt{}, err
	}
	return receipt(got), nil
}

// SetStatuses writes many presences with PUT /api/v2/users/presences/bulk, BulkSize at a time.
// A batch Genesys refuses as a whole is retried write by write so that one bad write does not
// fail the others.
func (c *Client) SetStatuses(ctx context.Context, writes []connector.StatusWrite) ([]connector.WriteResult, error) {
	errs := make([]connector.WriteResult, len(writes))
	for lo := 0; lo < len(writes); lo += c.o.BulkSize {
		batch := writes[lo:min(lo+c.o.BulkSize, len(writes))]
		body := make([]presenceWrite, len(batch))
		for i, w := range batch {
			body[i] = presenceWrite{ID: w.Account, PresenceDefinition: idReference{ID: w.StatusID}, Primary: true}
		}
		var got []userPresence
		err := c.do(ctx, "PUT", "/api/v2/users/presences/bulk", body, &got)
		switch {
		case err == nil:
			byUser := make(map[string]userPresence, len(got))
			for _, p := range got {
				byUser[p.ID] = p
			}
			for i, w := range batch {
				errs[lo+i].Receipt = receipt(byUser[w.Account])
			}
		case connector.IsPermanent(err) && len(batch) > 1:
			for i, w := range batch {
				errs[lo+i].Receipt, errs[lo+i].Err = c.SetStatus(ctx, w.Account, w.StatusID)
			}
		default:
			for i := range batch {
				errs[lo+i].Err = err
			}
			if ctx.Err() != nil {
				return errs, ctx.Err()
			}
		}
	}
	return errs, nil
}

// CurrentStatuses reads presences in bulk, 50 users a call; all users when accounts is empty.
func (c *Client) CurrentStatuses(ctx context.Context, accounts []string) (map[string]connector.Current, error) {
	ups, err := c.currentPresences(ctx, accounts)
	if err != nil {
		return nil, err
	}
	out := make(map[string]connector.Current, len(ups))
	for _, p := range ups {
		r := receipt(p)
		out[p.UserID] = connector.Current{StatusID: p.PresenceDefinition.ID, Since: r.At, Version: r.Version}
	}
	return out, nil
}

// Close releases idle connections.
func (c *Client) Close() error {
	c.o.HTTPClient.CloseIdleConnections()
	return nil
}

func (c *Client) currentPresences(ctx context.Context, accounts []string) ([]userPresence, error) {
	if len(accounts) == 0 {
		all, err := c.Accounts(ctx)
		if err != nil {
			return nil, err
		}
		for _, a := range all {
			accounts = append(accounts, a.ID)
		}
	}
	var out []userPresence
	const chunk = 50
	for lo := 0; lo < len(accounts); lo += chunk {
		q := url.Values{}
		for _, id := range accounts[lo:min(lo+chunk, len(accounts))] {
			q.Add("id", id)
		}
		var resp []userPresence
		if err := c.doRetry(ctx, "GET", "/api/v2/users/presences/purecloud/bulk?"+q.Encode(), nil, &resp); err != nil {
			return nil, err
		}
		out = append(out, resp...)
	}
	return out, nil
}

// Healthy checks that a token can be had and the API answers.
func (c *Client) Healthy(ctx context.Context) error {
	return c.do(ctx, "GET", "/api/v2/systempresences", nil, nil)
}

var (
	_ connector.Connector     = (*Client)(nil)
	_ connector.BulkSetter    = (*Client)(nil)
	_ connector.CurrentReader = (*Client)(nil)
	_ connector.Healther      = (*Client)(nil)
	_ connector.Limiter       = (*Client)(nil)
)
