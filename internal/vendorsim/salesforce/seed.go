package salesforce

import (
	"fmt"
	"strings"

	"github.com/omnipresence/omnipresence/internal/vendorsim"
	"github.com/omnipresence/omnipresence/internal/vendorsim/demoorg"
)

// Seed is the content of a simulated org.
type Seed struct {
	Channels []SeedChannel `json:"channels"`
	Statuses []SeedStatus  `json:"statuses"`
	Users    []SeedUser    `json:"users"`
	// Capacity is the configured capacity of every agent (PresenceUserConfig.Capacity).
	Capacity int `json:"capacity"`
}

// SeedChannel is a ServiceChannel.
type SeedChannel struct {
	DeveloperName string `json:"developer_name"`
	Label         string `json:"label"`
	RelatedEntity string `json:"related_entity"`
}

// SeedStatus is a ServicePresenceStatus with the DeveloperNames of its channels; a status
// without channels is an Away/Busy status.
type SeedStatus struct {
	DeveloperName string   `json:"developer_name"`
	Label         string   `json:"label"`
	Channels      []string `json:"channels"`
}

// SeedUser is an Omni-Channel user.
type SeedUser struct {
	FirstName  string `json:"first_name"`
	LastName   string `json:"last_name"`
	Email      string `json:"email"`
	Department string `json:"department"`
}

// DemoSeed is the demo org: the shared roster of demo agents, the standard voice, messaging and
// case channels, and statuses for voice, chat, break, lunch, training and meetings.
func DemoSeed() Seed {
	s := Seed{
		Capacity: 100,
		Channels: []SeedChannel{
			{DeveloperName: "sfdc_phone", Label: "Phone", RelatedEntity: "VoiceCall"},
			{DeveloperName: "sfdc_livemessage", Label: "Messaging", RelatedEntity: "MessagingSession"},
			{DeveloperName: "Cases", Label: "Cases", RelatedEntity: "Case"},
		},
		Statuses: []SeedStatus{
			{DeveloperName: "AvailableforVoice", Label: "Available for Voice", Channels: []string{"sfdc_phone"}},
			{DeveloperName: "AvailableforChat", Label: "Available for Chat", Channels: []string{"sfdc_livemessage"}},
			{DeveloperName: "Online", Label: "Online", Channels: []string{"sfdc_phone", "sfdc_livemessage", "Cases"}},
			{DeveloperName: "Busy", Label: "Busy"},
			{DeveloperName: "Break", Label: "Break"},
			{DeveloperName: "Lunch", Label: "Lunch"},
			{DeveloperName: "Training", Label: "Training"},
			{DeveloperName: "Meeting", Label: "Meeting"},
		},
	}
	for _, p := range demoorg.People() {
		s.Users = append(s.Users, SeedUser{FirstName: p.FirstName, LastName: p.LastName, Email: p.Email, Department: p.Team})
	}
	return s
}

// LoadSeed reads a seed from a JSON file.
func LoadSeed(path string) (Seed, error) {
	s, err := vendorsim.LoadSeed[Seed](path)
	if err != nil {
		return Seed{}, err
	}
	return s, s.validate()
}

func (s Seed) validate() error {
	channels := map[string]bool{}
	for _, c := range s.Channels {
		if c.DeveloperName == "" || channels[c.DeveloperName] {
			return fmt.Errorf("seed: channel developer_name %q is empty or repeated", c.DeveloperName)
		}
		channels[c.DeveloperName] = true
	}
	names := map[string]bool{}
	for _, st := range s.Statuses {
		if st.DeveloperName == "" || names[st.DeveloperName] || st.DeveloperName == Offline {
			return fmt.Errorf("seed: status developer_name %q is empty, repeated or reserved", st.DeveloperName)
		}
		names[st.DeveloperName] = true
		for _, c := range st.Channels {
			if !channels[c] {
				return fmt.Errorf("seed: status %s names unknown channel %q", st.DeveloperName, c)
			}
		}
	}
	emails := map[string]bool{}
	for _, u := range s.Users {
		e := strings.ToLower(u.Email)
		if e == "" || emails[e] {
			return fmt.Errorf("seed: user email %q is empty or repeated", u.Email)
		}
		emails[e] = true
	}
	if s.Capacity < 0 {
		return fmt.Errorf("seed: capacity must not be negative")
	}
	return nil
}

// load fills the org from the seed plus the integration user the API authenticates as.
func (o *org) load(s Seed, integrationUser string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	admin := o.insert("User", record{"Username": integrationUser, "FirstName": "Integration", "LastName": "User",
		"Name": "Integration User", "Email": integrationUser, "IsActive": true, "UserType": "Standard", "Department": "IT"})
	o.adminID = admin["Id"].(string)
	admin["CreatedById"], admin["LastModifiedById"] = o.adminID, o.adminID
	for _, u := range s.Users {
		o.insert("User", record{"Username": u.Email, "FirstName": u.FirstName, "LastName": u.LastName,
			"Name": strings.TrimSpace(u.FirstName + " " + u.LastName), "Email": u.Email, "IsActive": true,
			"UserType": "Standard", "Department": u.Department})
	}
	if s.Capacity > 0 {
		o.capac = int64(s.Capacity)
	}
	o.insert("PresenceUserConfig", record{"DeveloperName": "Contact_Center", "MasterLabel": "Contact Center",
		"Capacity": o.capac, "OptionsIsAutoAcceptEnabled": false, "OptionsIsDeclineEnabled": true,
		"HasAfterConvoWorkTimer": true, "AfterConvoWorkMaxTime": int64(120)})
	chanID := map[string]string{}
	for _, c := range s.Channels {
		r := o.insert("ServiceChannel", record{"DeveloperName": c.DeveloperName, "MasterLabel": orDefault(c.Label, c.DeveloperName),
			"RelatedEntity": c.RelatedEntity, "CapacityModel": "StatusBased"})
		chanID[c.DeveloperName] = r["Id"].(string)
	}
	for _, st := range s.Statuses {
		r := o.insert("ServicePresenceStatus", record{"DeveloperName": st.DeveloperName,
			"MasterLabel": orDefault(st.Label, st.DeveloperName), "Language": "en_US"})
		for _, c := range st.Channels {
			o.insert("ServiceChannelStatus", record{"ServiceChannelId": chanID[c], "ServicePresenceStatusId": r["Id"]})
		}
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
