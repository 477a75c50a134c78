package policy

import "github.com/omnipresence/omnipresence/internal/presence"

// Catalog is one system's status list with lookups by id and by name.
type Catalog struct {
	statuses []presence.Status
	byID     map[string]int
	byName   map[string]int
}

// NewCatalog indexes statuses; the first of two entries with one id or name wins.
func NewCatalog(statuses []presence.Status) *Catalog {
	c := &Catalog{statuses: statuses, byID: map[string]int{}, byName: map[string]int{}}
	for i, s := range statuses {
		if _, dup := c.byID[s.ID]; !dup && s.ID != "" {
			c.byID[s.ID] = i
		}
		if _, dup := c.byName[s.Name]; !dup && s.Name != "" {
			c.byName[s.Name] = i
		}
	}
	return c
}

// Statuses returns the catalog in its original order.
func (c *Catalog) Statuses() []presence.Status { return c.statuses }

// ByID finds a status by vendor id.
func (c *Catalog) ByID(id string) (presence.Status, bool) {
	if i, ok := c.byID[id]; ok {
		return c.statuses[i], true
	}
	return presence.Status{}, false
}

// ByName finds a status by its stable name.
func (c *Catalog) ByName(name string) (presence.Status, bool) {
	if i, ok := c.byName[name]; ok {
		return c.statuses[i], true
	}
	return presence.Status{}, false
}

// Resolve finds a status named by id or by name, id first.
func (c *Catalog) Resolve(nameOrID string) (presence.Status, bool) {
	if s, ok := c.ByID(nameOrID); ok {
		return s, true
	}
	return c.ByName(nameOrID)
}
