package amazonconnect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/connect"
	"github.com/aws/aws-sdk-go-v2/service/connect/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
	"golang.org/x/time/rate"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/settings"
)

// Options configure a Connector.
type Options struct {
	// System is the configured system name events carry.
	System string
	// Region and InstanceID name the Connect instance.
	Region, InstanceID string
	// Endpoint and KinesisEndpoint override the AWS endpoints (the simulator's URLs).
	Endpoint, KinesisEndpoint string
	// Stream is the Kinesis stream of the instance's agent events; without it Watch reports
	// nothing and returns when ctx ends.
	Stream string
	// AccessKeyID and SecretAccessKey are static credentials; empty for the standard AWS
	// credential chain.
	AccessKeyID, SecretAccessKey string
	// HTTPClient makes every call; the SDK's own when nil.
	HTTPClient *http.Client
	// Logger receives the connector's logs.
	Logger *slog.Logger
	// Checkpoints keep each shard's sequence number; in memory when nil.
	Checkpoints connector.Checkpoints
	// WriteRate and WriteBurst are PutUserStatus's quota (2 per second, burst 5); ReadRate and
	// ReadBurst the other Connect APIs' (2, 5); UserDataRate and UserDataBurst
	// GetCurrentUserData's (5, 8).
	WriteRate, ReadRate, UserDataRate    float64
	WriteBurst, ReadBurst, UserDataBurst int
	// ShardReads is the GetRecords calls per second a shard allows (5); the connector uses
	// at most half of it, leaving the rest to other consumers of the stream.
	ShardReads float64
	// PollInterval is the wait between GetRecords calls on a shard that is caught up (500 ms).
	PollInterval time.Duration
	// ShardRefresh is how often the stream's shards are listed again (30 s).
	ShardRefresh time.Duration
	// WireSecond is how long a second of the quotas above lasts (one second); benchmarks
	// against a simulator with a faster clock shrink it.
	WireSecond time.Duration
}

// Connector is an Amazon Connect instance: statuses and users from the Connect API, writes with
// PutUserStatus, current state with GetCurrentUserData, changes from the agent event stream.
type Connector struct {
	o       Options
	log     *slog.Logger
	connect *connect.Client
	kinesis *kinesis.Client

	write, read, ud *rate.Limiter

	mu       sync.Mutex
	statuses map[string]presence.Status // id → status, from the last Catalog
	byName   map[string]string          // name → id
	offline  string
}

// Factory is the connector.Factory of Amazon Connect; the settings have passed checkSettings.
func Factory(ctx context.Context, name string, s settings.Settings, deps connector.Deps) (connector.Connector, error) {
	o := Options{System: name, HTTPClient: deps.HTTPClient, Logger: deps.Logger, Checkpoints: deps.Checkpoints}
	for _, f := range []struct {
		key string
		dst *string
	}{{"region", &o.Region}, {"instance_id", &o.InstanceID}, {"endpoint", &o.Endpoint}, {"kinesis_endpoint", &o.KinesisEndpoint},
		{"agent_event_stream", &o.Stream}, {"access_key_id", &o.AccessKeyID}, {"secret_access_key", &o.SecretAccessKey}} {
		v, err := s.String(f.key)
		if err != nil {
			return nil, err
		}
		*f.dst = strings.TrimSpace(v)
	}
	return New(ctx, o)
}

// New builds a connector; it makes no call.
func New(ctx context.Context, o Options) (*Connector, error) {
	if o.Region == "" || o.InstanceID == "" {
		return nil, errors.New("amazonconnect: region and instance_id are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Checkpoints == nil {
		o.Checkpoints = &connector.MemoryCheckpoints{}
	}
	def := func(v *float64, d float64) {
		if *v <= 0 {
			*v = d
		}
	}
	defInt := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.WriteRate, 2)
	def(&o.ReadRate, 2)
	def(&o.UserDataRate, 5)
	def(&o.ShardReads, 5)
	defInt(&o.WriteBurst, 5)
	defInt(&o.ReadBurst, 5)
	defInt(&o.UserDataBurst, 8)
	if o.PollInterval <= 0 {
		o.PollInterval = 500 * time.Millisecond
	}
	if o.ShardRefresh <= 0 {
		o.ShardRefresh = 30 * time.Second
	}
	if o.WireSecond <= 0 {
		o.WireSecond = time.Second
	}
	// The SDK's own warnings go to the system's log, at debug level.
	sdkLog := logging.LoggerFunc(func(c logging.Classification, format string, v ...any) {
		o.Logger.Debug("aws sdk: "+fmt.Sprintf(format, v...), "class", string(c))
	})
	opts := []func(*config.LoadOptions) error{config.WithRegion(o.Region), config.WithLogger(sdkLog)}
	if o.AccessKeyID != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(o.AccessKeyID, o.SecretAccessKey, "")))
	}
	// A client with the default transport becomes the SDK's own with the same timeout, which
	// honours AWS_CA_BUNDLE; one with a transport of its own is used as it is.
	custom := o.HTTPClient != nil && o.HTTPClient.Transport != nil
	if o.HTTPClient != nil && !custom {
		opts = append(opts, config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(o.HTTPClient.Timeout)))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("amazonconnect: AWS configuration: %w", err)
	}
	c := &Connector{o: o, log: o.Logger,
		write: limiter(o.WriteRate, o.WriteBurst, o.WireSecond),
		read:  limiter(o.ReadRate, o.ReadBurst, o.WireSecond),
		ud:    limiter(o.UserDataRate, o.UserDataBurst, o.WireSecond),
	}
	c.connect = connect.NewFromConfig(cfg, func(co *connect.Options) {
		if o.Endpoint != "" {
			co.BaseEndpoint = aws.String(o.Endpoint)
		}
		if custom {
			co.HTTPClient = o.HTTPClient
		}
	})
	c.kinesis = kinesis.NewFromConfig(cfg, func(ko *kinesis.Options) {
		if o.KinesisEndpoint != "" {
			ko.BaseEndpoint = aws.String(o.KinesisEndpoint)
		}
		if custom {
			ko.HTTPClient = o.HTTPClient
		}
	})
	return c, nil
}

// limiter spends a quota of perSecond with burst, keeping one request of the burst back: the
// vendor counts requests when they arrive, and two sent a refill apart may arrive closer.
func limiter(perSecond float64, burst int, wireSecond time.Duration) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(perSecond/wireSecond.Seconds()), max(1, burst-1))
}

// Close releases nothing: the SDK clients hold no background work.
func (c *Connector) Close() error { return nil }

// WriteLimit is PutUserStatus's quota, which the engine applies up front, with one request of
// the burst kept back (see limiter).
func (c *Connector) WriteLimit() (float64, int) {
	return c.o.WriteRate / c.o.WireSecond.Seconds(), max(1, c.o.WriteBurst-1)
}

// Healthy lists one agent status: the instance answers and the credentials are good.
func (c *Connector) Healthy(ctx context.Context) error {
	if err := c.read.Wait(ctx); err != nil {
		return err
	}
	_, err := c.connect.ListAgentStatuses(ctx, &connect.ListAgentStatusesInput{InstanceId: &c.o.InstanceID, MaxResults: aws.Int32(1)})
	return classify(err, c.o.WireSecond)
}

// categoryOf guesses the category of a status from its type and name.
func categoryOf(typ types.AgentStatusType, name string) presence.Category {
	switch typ {
	case types.AgentStatusTypeRoutable:
		return presence.CategoryAvailable
	case types.AgentStatusTypeOffline:
		return presence.CategoryOffline
	}
	return presence.CategoryOfName(name)
}

// Catalog lists the instance's agent statuses (settable) and Connect's system states, which
// rules may test but nothing can set; their ids are their names.
func (c *Connector) Catalog(ctx context.Context) ([]presence.Status, error) {
	var out []presence.Status
	names := map[string]bool{}
	p := connect.NewListAgentStatusesPaginator(c.connect, &connect.ListAgentStatusesInput{InstanceId: &c.o.InstanceID, MaxResults: aws.Int32(1000)})
	err := eachPage(ctx, c.read, c.o.WireSecond, p, func(page *connect.ListAgentStatusesOutput) error {
		for _, s := range page.AgentStatusSummaryList {
			name := aws.ToString(s.Name)
			out = append(out, presence.Status{ID: aws.ToString(s.Id), Name: name, Label: name,
				Category: categoryOf(s.Type, name), Settable: true})
			names[name] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, name := range Vendor.Catalog.SystemStates {
		if !names[name] {
			out = append(out, presence.Status{ID: name, Name: name, Label: name, Category: presence.CategorySystem})
		}
	}
	c.mu.Lock()
	c.statuses, c.byName, c.offline = map[string]presence.Status{}, map[string]string{}, ""
	for _, s := range out {
		c.statuses[s.ID], c.byName[s.Name] = s, s.ID
		if s.Category == presence.CategoryOffline && c.offline == "" {
			c.offline = s.ID
		}
	}
	c.mu.Unlock()
	return out, nil
}

// catalog returns the statuses, listing them once.
func (c *Connector) catalog(ctx context.Context) (map[string]presence.Status, map[string]string, string, error) {
	c.mu.Lock()
	loaded := c.statuses != nil
	c.mu.Unlock()
	if !loaded {
		if _, err := c.Catalog(ctx); err != nil {
			return nil, nil, "", err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.statuses, c.byName, c.offline, nil
}

// Accounts lists the instance's users (ListUsers). A username that is an email is the user's
// email; for the others DescribeUser reads it from the identity info.
func (c *Connector) Accounts(ctx context.Context) ([]presence.Account, error) {
	var out []presence.Account
	p := connect.NewListUsersPaginator(c.connect, &connect.ListUsersInput{InstanceId: &c.o.InstanceID, MaxResults: aws.Int32(1000)})
	err := eachPage(ctx, c.read, c.o.WireSecond, p, func(page *connect.ListUsersOutput) error {
		for _, u := range page.UserSummaryList {
			a := presence.Account{ID: aws.ToString(u.Id), Name: aws.ToString(u.Username)}
			if strings.Contains(a.Name, "@") {
				a.Email = a.Name
			} else {
				if err := c.read.Wait(ctx); err != nil {
					return err
				}
				d, err := c.connect.DescribeUser(ctx, &connect.DescribeUserInput{InstanceId: &c.o.InstanceID, UserId: u.Id})
				if err != nil {
					return classify(err, c.o.WireSecond)
				}
				if d.User != nil && d.User.IdentityInfo != nil {
					a.Email = aws.ToString(d.User.IdentityInfo.Email)
				}
			}
			if a.Email != "" {
				out = append(out, a)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SetStatus puts the status (PutUserStatus) and reads it back (GetCurrentUserData): the
// receipt's Version is the status's StartTimestamp, in milliseconds, which the agent event of
// the change carries too. While the agent is on a contact or in after-contact work Connect keeps
// the status as the agent's NextStatus: the receipt is Queued until the contact is cleared.
// System states cannot be set (a *PermanentError). The write is not retried here: throttling
// comes back as a *RetryAfterError for the engine to wait.
func (c *Connector) SetStatus(ctx context.Context, account, statusID string) (connector.Receipt, error) {
	if Vendor.Catalog.IsSystemState(statusID) {
		return connector.Receipt{}, &connector.PermanentError{Err: fmt.Errorf("%s is a Connect system state; it cannot be set", statusID)}
	}
	if err := c.write.Wait(ctx); err != nil {
		return connector.Receipt{}, &connector.NotAppliedError{Err: err}
	}
	_, err := c.connect.PutUserStatus(ctx, &connect.PutUserStatusInput{InstanceId: &c.o.InstanceID, UserId: &account,
		AgentStatusId: &statusID}, func(o *connect.Options) { o.RetryMaxAttempts = 1 })
	if err != nil {
		return connector.Receipt{}, classify(err, c.o.WireSecond)
	}
	data, err := c.userData(ctx, []string{account})
	if err != nil || len(data) == 0 {
		// The write was taken; only its receipt is unknown.
		c.log.Debug("reading back a status", "account", account, "err", err)
		return connector.Receipt{}, nil
	}
	d := data[0]
	if d.Status != nil && idOfARN(aws.ToString(d.Status.StatusArn), "/agent-state/") == statusID && len(d.Contacts) == 0 {
		at := aws.ToTime(d.Status.StatusStartTimestamp)
		return connector.Receipt{Version: version(at), At: at}, nil
	}
	if d.NextStatus != nil && len(d.Contacts) > 0 {
		state, _ := systemState(contactsOf(d.Contacts))
		return connector.Receipt{Queued: queuedReason(state)}, nil
	}
	return connector.Receipt{}, nil
}

// queuedReason says what a NextStatus waits for, after "holds it until".
func queuedReason(state string) string {
	if state == "AfterCallWork" {
		return "the agent clears after-contact work (NextStatus)"
	}
	return "the agent's contact and its after-contact work end (NextStatus)"
}

// version renders a Connect timestamp as a receipt and event Version: Unix milliseconds.
func version(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}

// idOfARN returns the id after marker ("/agent/", "/agent-state/") in an ARN.
func idOfARN(arn, marker string) string {
	if i := strings.LastIndex(arn, marker); i >= 0 {
		return arn[i+len(marker):]
	}
	return ""
}

// userData reads GetCurrentUserData for up to 100 agents, every page.
func (c *Connector) userData(ctx context.Context, agents []string) ([]types.UserData, error) {
	var out []types.UserData
	p := connect.NewGetCurrentUserDataPaginator(c.connect, &connect.GetCurrentUserDataInput{InstanceId: &c.o.InstanceID,
		Filters: &types.UserDataFilters{Agents: agents}, MaxResults: aws.Int32(100)})
	err := eachPage(ctx, c.ud, c.o.WireSecond, p, func(page *connect.GetCurrentUserDataOutput) error {
		out = append(out, page.UserDataList...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// paginator is an SDK paginator of a Connect list operation, whose pages are O.
type paginator[O any] interface {
	HasMorePages() bool
	NextPage(ctx context.Context, optFns ...func(*connect.Options)) (O, error)
}

// eachPage reads every page of p, waiting for lim before each call, and hands each page to use;
// it stops at the first error, classifying a failed call's for the engine.
func eachPage[O any](ctx context.Context, lim *rate.Limiter, wireSecond time.Duration, p paginator[O], use func(O) error) error {
	for p.HasMorePages() {
		if err := lim.Wait(ctx); err != nil {
			return err
		}
		page, err := p.NextPage(ctx)
		if err != nil {
			return classify(err, wireSecond)
		}
		if err := use(page); err != nil {
			return err
		}
	}
	return nil
}

// CurrentStatuses reads what the agents show (GetCurrentUserData, 100 agents a call), dated by
// Connect: the agent status and its StartTimestamp, or the system state a contact puts the
// agent in and the contact state's start. Agents who are not logged in show the Offline status,
// undated.
func (c *Connector) CurrentStatuses(ctx context.Context, accounts []string) (map[string]connector.Current, error) {
	if len(accounts) == 0 {
		all, err := c.Accounts(ctx)
		if err != nil {
			return nil, err
		}
		for _, a := range all {
			accounts = append(accounts, a.ID)
		}
	}
	_, _, offline, err := c.catalog(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]connector.Current{}
	for i := 0; i < len(accounts); i += 100 {
		batch := accounts[i:min(i+100, len(accounts))]
		data, err := c.userData(ctx, batch)
		if err != nil {
			return nil, err
		}
		for _, d := range data {
			if d.User == nil || d.Status == nil {
				continue
			}
			id := aws.ToString(d.User.Id)
			if state, since := systemState(contactsOf(d.Contacts)); state != "" {
				out[id] = connector.Current{StatusID: state, Since: since}
				continue
			}
			at := aws.ToTime(d.Status.StatusStartTimestamp)
			out[id] = connector.Current{StatusID: idOfARN(aws.ToString(d.Status.StatusArn), "/agent-state/"), Since: at, Version: version(at)}
		}
		if offline != "" {
			for _, a := range batch {
				if _, ok := out[a]; !ok {
					out[a] = connector.Current{StatusID: offline}
				}
			}
		}
	}
	return out, nil
}

// contactView is one contact of an agent, from GetCurrentUserData or an agent event.
type contactView struct {
	ID, Channel, Method, State string
	Start                      time.Time
}

func contactsOf(cs []types.AgentContactReference) []contactView {
	out := make([]contactView, 0, len(cs))
	for _, c := range cs {
		out = append(out, contactView{ID: aws.ToString(c.ContactId), Channel: string(c.Channel), Method: string(c.InitiationMethod),
			State: string(c.AgentContactState), Start: aws.ToTime(c.StateStartTimestamp)})
	}
	return out
}

// systemState is the Connect system state an agent's contacts put them in ("" for none) and
// since when: Busy on a connected contact, CallingCustomer on an outbound one connecting,
// PendingBusy on an inbound one connecting, Pending on a callback waiting, AfterCallWork on an
// ended one. The highest of them wins, in that order.
func systemState(contacts []contactView) (string, time.Time) {
	rank := map[string]int{"Busy": 5, "CallingCustomer": 4, "PendingBusy": 3, "Pending": 2, "AfterCallWork": 1}
	best, since := "", time.Time{}
	for _, c := range contacts {
		var s string
		switch c.State {
		case "CONNECTED", "CONNECTED_ONHOLD", "PAUSED":
			s = "Busy"
		case "INCOMING", "CONNECTING", "PENDING":
			switch {
			case c.Method == "OUTBOUND":
				s = "CallingCustomer"
			case c.Method == "CALLBACK" && c.State == "PENDING":
				s = "Pending"
			default:
				s = "PendingBusy"
			}
		case "ENDED":
			s = "AfterCallWork"
		default:
			continue
		}
		if rank[s] > rank[best] {
			best, since = s, c.Start
		}
	}
	return best, since
}

// classify turns an SDK error into the connector's typed errors.
func classify(err error, wireSecond time.Duration) error {
	if err == nil {
		return nil
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "ThrottlingException", "TooManyRequestsException", "LimitExceededException", "ProvisionedThroughputExceededException":
			after := wireSecond / 2
			var re *awshttp.ResponseError
			if errors.As(err, &re) && re.Response != nil {
				if ms, perr := strconv.Atoi(re.Response.Header.Get("x-amz-retry-after")); perr == nil && ms > 0 {
					after = time.Duration(ms) * time.Millisecond
				}
			}
			return &connector.RetryAfterError{After: after, Err: err}
		case "ResourceNotFoundException", "InvalidParameterException", "InvalidRequestException", "AccessDeniedException",
			"ValidationException", "DuplicateResourceException":
			return &connector.PermanentError{Err: err}
		case "UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException", "ExpiredToken",
			"MissingAuthenticationTokenException", "InvalidClientTokenId", "ServiceUnavailableException":
			return &connector.NotAppliedError{Err: err}
		}
		var re *awshttp.ResponseError
		if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusServiceUnavailable {
			return &connector.NotAppliedError{Err: err}
		}
		return err
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return &connector.NotAppliedError{Err: err}
	}
	if strings.Contains(err.Error(), "failed to retrieve credentials") || strings.Contains(err.Error(), "failed to refresh cached credentials") {
		return &connector.NotAppliedError{Err: err}
	}
	return err
}
