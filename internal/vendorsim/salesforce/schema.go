package salesforce

import "strings"

// fieldType is a Salesforce field type as describe reports it.
type fieldType string

const (
	typeID       fieldType = "id"
	typeRef      fieldType = "reference"
	typeString   fieldType = "string"
	typeBool     fieldType = "boolean"
	typeInt      fieldType = "int"
	typeDouble   fieldType = "double"
	typeDateTime fieldType = "datetime"
	typePicklist fieldType = "picklist"
	typeEmail    fieldType = "email"
)

// field is one field of an object.
type field struct {
	Name  string
	Label string
	Type  fieldType
	// RefTo and RelName are set for references: the target object and the relationship name
	// used in SOQL paths (ServicePresenceStatus.DeveloperName).
	RefTo   string
	RelName string
}

// object is one sObject type.
type object struct {
	Name   string
	Label  string
	Plural string
	Prefix string
	Fields []field
	// Createable and Updateable tell describe and the REST write paths what the API allows.
	Createable bool
	Updateable bool
}

// field returns the field called name, case-insensitively.
func (o *object) field(name string) (*field, bool) {
	for i := range o.Fields {
		if strings.EqualFold(o.Fields[i].Name, name) {
			return &o.Fields[i], true
		}
	}
	return nil, false
}

// relationship returns the reference field whose relationship name is rel.
func (o *object) relationship(rel string) (*field, bool) {
	for i := range o.Fields {
		if o.Fields[i].RelName != "" && strings.EqualFold(o.Fields[i].RelName, rel) {
			return &o.Fields[i], true
		}
	}
	return nil, false
}

func auditFields() []field {
	return []field{
		{Name: "IsDeleted", Label: "Deleted", Type: typeBool},
		{Name: "CreatedDate", Label: "Created Date", Type: typeDateTime},
		{Name: "CreatedById", Label: "Created By ID", Type: typeRef, RefTo: "User", RelName: "CreatedBy"},
		{Name: "LastModifiedDate", Label: "Last Modified Date", Type: typeDateTime},
		{Name: "LastModifiedById", Label: "Last Modified By ID", Type: typeRef, RefTo: "User", RelName: "LastModifiedBy"},
		{Name: "SystemModstamp", Label: "System Modstamp", Type: typeDateTime},
	}
}

func withAudit(fs ...field) []field { return append(fs, auditFields()...) }

// objects are the sObject types the simulator serves, with their real key prefixes and the
// fields integrators read.
var objects = map[string]*object{
	"User": {Name: "User", Label: "User", Plural: "Users", Prefix: prefixUser, Createable: true, Updateable: true,
		Fields: withAudit(
			field{Name: "Id", Label: "User ID", Type: typeID},
			field{Name: "Username", Label: "Username", Type: typeString},
			field{Name: "FirstName", Label: "First Name", Type: typeString},
			field{Name: "LastName", Label: "Last Name", Type: typeString},
			field{Name: "Name", Label: "Full Name", Type: typeString},
			field{Name: "Email", Label: "Email", Type: typeEmail},
			field{Name: "IsActive", Label: "Active", Type: typeBool},
			field{Name: "UserType", Label: "User Type", Type: typePicklist},
			field{Name: "Department", Label: "Department", Type: typeString},
		)},
	"ServiceChannel": {Name: "ServiceChannel", Label: "Service Channel", Plural: "Service Channels",
		Prefix: prefixServiceChannel, Createable: true, Updateable: true,
		Fields: withAudit(
			field{Name: "Id", Label: "Service Channel ID", Type: typeID},
			field{Name: "DeveloperName", Label: "Developer Name", Type: typeString},
			field{Name: "MasterLabel", Label: "Label", Type: typeString},
			field{Name: "RelatedEntity", Label: "Related Entity", Type: typePicklist},
			field{Name: "CapacityModel", Label: "Capacity Model", Type: typePicklist},
		)},
	"ServicePresenceStatus": {Name: "ServicePresenceStatus", Label: "Presence Status", Plural: "Presence Statuses",
		Prefix: prefixServicePresenceStat, Createable: true, Updateable: true,
		Fields: withAudit(
			field{Name: "Id", Label: "Presence Status ID", Type: typeID},
			field{Name: "DeveloperName", Label: "Developer Name", Type: typeString},
			field{Name: "MasterLabel", Label: "Label", Type: typeString},
			field{Name: "Language", Label: "Master Language", Type: typePicklist},
		)},
	"ServiceChannelStatus": {Name: "ServiceChannelStatus", Label: "Service Channel Status", Plural: "Service Channel Statuses",
		Prefix: prefixServiceChannelStatus, Createable: true, Updateable: true,
		Fields: withAudit(
			field{Name: "Id", Label: "Service Channel Status ID", Type: typeID},
			field{Name: "ServiceChannelId", Label: "Service Channel ID", Type: typeRef, RefTo: "ServiceChannel", RelName: "ServiceChannel"},
			field{Name: "ServicePresenceStatusId", Label: "Presence Status ID", Type: typeRef, RefTo: "ServicePresenceStatus", RelName: "ServicePresenceStatus"},
		)},
	"PresenceUserConfig": {Name: "PresenceUserConfig", Label: "Presence Configuration", Plural: "Presence Configurations",
		Prefix: prefixPresenceUserConfig, Createable: true, Updateable: true,
		Fields: withAudit(
			field{Name: "Id", Label: "Presence Configuration ID", Type: typeID},
			field{Name: "DeveloperName", Label: "Developer Name", Type: typeString},
			field{Name: "MasterLabel", Label: "Label", Type: typeString},
			field{Name: "Capacity", Label: "Capacity", Type: typeInt},
			field{Name: "OptionsIsAutoAcceptEnabled", Label: "Auto-accept", Type: typeBool},
			field{Name: "OptionsIsDeclineEnabled", Label: "Decline Enabled", Type: typeBool},
			field{Name: "HasAfterConvoWorkTimer", Label: "After Conversation Work Timer", Type: typeBool},
			field{Name: "AfterConvoWorkMaxTime", Label: "After Conversation Work Max Time", Type: typeInt},
		)},
	// UserServicePresence supports query, retrieve and delete only: create and update are
	// refused over the API, as in Salesforce.
	"UserServicePresence": {Name: "UserServicePresence", Label: "User Presence", Plural: "User Presences",
		Prefix: prefixUserServicePresence,
		Fields: withAudit(
			field{Name: "Id", Label: "User Presence ID", Type: typeID},
			field{Name: "Name", Label: "Name", Type: typeString},
			field{Name: "OwnerId", Label: "Owner ID", Type: typeRef, RefTo: "User", RelName: "Owner"},
			field{Name: "UserId", Label: "User ID", Type: typeRef, RefTo: "User", RelName: "User"},
			field{Name: "ServicePresenceStatusId", Label: "Service Presence Status ID", Type: typeRef, RefTo: "ServicePresenceStatus", RelName: "ServicePresenceStatus"},
			field{Name: "IsCurrentState", Label: "Is Current State", Type: typeBool},
			field{Name: "StatusStartDate", Label: "Status Start Date", Type: typeDateTime},
			field{Name: "StatusEndDate", Label: "Status End Date", Type: typeDateTime},
			field{Name: "StatusDuration", Label: "Status Duration", Type: typeInt},
			field{Name: "ConfiguredCapacity", Label: "Configured Capacity", Type: typeInt},
			field{Name: "ConfiguredInterruptCapacity", Label: "Configured Interruptible Capacity", Type: typeInt},
			field{Name: "IsAway", Label: "Is Away", Type: typeBool},
			field{Name: "AtCapacityDuration", Label: "At Capacity Duration", Type: typeInt},
			field{Name: "IdleDuration", Label: "Idle Duration", Type: typeInt},
			field{Name: "AverageCapacity", Label: "Average Capacity", Type: typeDouble},
		)},
	// AgentWork is written by routing (Server.RouteWork, AcceptWork, CloseWork); the API reads it.
	"AgentWork": {Name: "AgentWork", Label: "Agent Work", Plural: "Agent Work", Prefix: prefixAgentWork,
		Fields: withAudit(
			field{Name: "Id", Label: "Agent Work ID", Type: typeID},
			field{Name: "Name", Label: "Name", Type: typeString},
			field{Name: "OwnerId", Label: "Owner ID", Type: typeRef, RefTo: "User", RelName: "Owner"},
			field{Name: "UserId", Label: "User ID", Type: typeRef, RefTo: "User", RelName: "User"},
			field{Name: "WorkItemId", Label: "Work Item ID", Type: typeRef},
			field{Name: "ServiceChannelId", Label: "Service Channel ID", Type: typeRef, RefTo: "ServiceChannel", RelName: "ServiceChannel"},
			field{Name: "Status", Label: "Status", Type: typePicklist},
			field{Name: "AssignedDateTime", Label: "Assigned DateTime", Type: typeDateTime},
			field{Name: "AcceptDateTime", Label: "Accept DateTime", Type: typeDateTime},
			field{Name: "CloseDateTime", Label: "Close DateTime", Type: typeDateTime},
			field{Name: "CapacityWeight", Label: "Capacity Weight", Type: typeDouble},
			field{Name: "CapacityPercentage", Label: "Capacity Percentage", Type: typeDouble},
			field{Name: "RoutingModel", Label: "Routing Model", Type: typePicklist},
			field{Name: "RoutingType", Label: "Routing Type", Type: typePicklist},
		)},
}

// lookupObject finds an object by name, case-insensitively.
func lookupObject(name string) (*object, bool) {
	for k, o := range objects {
		if strings.EqualFold(k, name) {
			return o, true
		}
	}
	return nil, false
}
