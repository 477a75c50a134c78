package salesforce

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/omnipresence/omnipresence/internal/pubsubapi"
)

// maxNumRequested is the most events one FetchRequest may ask for.
const maxNumRequested = 100

// pubsubService serves the Pub/Sub API over the org's change event bus.
type pubsubService struct {
	pubsubapi.UnimplementedPubSubServer
	s *Server
}

// authenticate checks the accesstoken, instanceurl and tenantid metadata headers.
func (p *pubsubService) authenticate(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	get := func(k string) string {
		if v := md.Get(k); len(v) > 0 {
			return v[0]
		}
		return ""
	}
	if _, ok := p.s.authorize(get("accesstoken")); !ok {
		_ = grpc.SetTrailer(ctx, metadata.Pairs("error-code", "sfdc.platform.eventbus.grpc.service.auth.error"))
		return status.Error(codes.Unauthenticated, "authentication exception: the access token is missing, invalid or expired")
	}
	if tid := get("tenantid"); tid != "" && !strings.EqualFold(tid, p.s.org.id) && !strings.EqualFold(tid, p.s.org.id[:15]) {
		return status.Error(codes.PermissionDenied, "the tenantid does not match the access token's org")
	}
	if get("instanceurl") == "" {
		return status.Error(codes.Unauthenticated, "authentication exception: the instanceurl header is missing")
	}
	return nil
}

// topic returns a predicate over entity names for a topic, or false when it does not exist.
func (p *pubsubService) topic(name string) (func(string) bool, bool) {
	switch name {
	case UserServicePresenceTopic:
		return func(e string) bool { return e == "UserServicePresence" }, true
	case AgentWorkTopic:
		return func(e string) bool { return e == "AgentWork" }, true
	case allChangeEventsTopic:
		return func(string) bool { return true }, true
	}
	for _, ch := range p.s.cfg.Channels {
		if ch == name {
			return func(e string) bool { return e == "UserServicePresence" }, true
		}
	}
	return nil, false
}

// GetTopic describes a change event channel.
func (p *pubsubService) GetTopic(ctx context.Context, req *pubsubapi.TopicRequest) (*pubsubapi.TopicInfo, error) {
	if err := p.authenticate(ctx); err != nil {
		return nil, err
	}
	if _, ok := p.topic(req.GetTopicName()); !ok {
		return nil, status.Errorf(codes.NotFound, "topic %q does not exist or you do not have access to it", req.GetTopicName())
	}
	id := uspSchemaID
	if req.GetTopicName() == AgentWorkTopic {
		id = awSchemaID
	}
	return &pubsubapi.TopicInfo{TopicName: req.GetTopicName(), TenantGuid: p.s.org.id, CanPublish: false,
		CanSubscribe: true, SchemaId: id, RpcId: newUUID()}, nil
}

// GetSchema returns the Avro schema of an id GetTopic or an event named.
func (p *pubsubService) GetSchema(ctx context.Context, req *pubsubapi.SchemaRequest) (*pubsubapi.SchemaInfo, error) {
	if err := p.authenticate(ctx); err != nil {
		return nil, err
	}
	schemas := map[string]string{uspSchemaID: uspChangeEventSchema, awSchemaID: awChangeEventSchema}
	js, ok := schemas[req.GetSchemaId()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "schema %q does not exist", req.GetSchemaId())
	}
	return &pubsubapi.SchemaInfo{SchemaJson: js, SchemaId: req.GetSchemaId(), RpcId: newUUID()}, nil
}

// Subscribe streams a topic's events with pull-based flow control: the first FetchRequest
// names the topic and the starting point; each FetchRequest adds num_requested (1..100) to the
// events the server may send. An idle stream gets an empty FetchResponse every KeepAlive with the
// subscription's latest replay id: the last event it was sent (or where it started).
func (p *pubsubService) Subscribe(stream pubsubapi.PubSub_SubscribeServer) error {
	ctx := stream.Context()
	if err := p.authenticate(ctx); err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	match, ok := p.topic(first.GetTopicName())
	if !ok {
		return status.Errorf(codes.NotFound, "topic %q does not exist or you do not have access to it", first.GetTopicName())
	}
	if n := first.GetNumRequested(); n < 1 || n > maxNumRequested {
		return status.Errorf(codes.InvalidArgument, "num_requested must be between 1 and %d, got %d", maxNumRequested, n)
	}
	preset := first.GetReplayPreset().String()
	pos, err := p.s.org.bus.start(preset, first.GetReplayId())
	if err != nil {
		_ = grpc.SetTrailer(ctx, metadata.Pairs("error-code", "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"))
		return status.Errorf(codes.InvalidArgument, "the replay id validation failed: %v", err)
	}
	rpcID := newUUID()
	more := make(chan int32, 16)
	errc := make(chan error, 1)
	var recvErr <-chan error = errc
	go func() {
		for {
			req, err := stream.Recv()
			if err != nil {
				errc <- err
				return
			}
			if t := req.GetTopicName(); t != "" && t != first.GetTopicName() {
				errc <- status.Error(codes.InvalidArgument, "the topic of a subscription cannot change")
				return
			}
			n := req.GetNumRequested()
			if n < 1 || n > maxNumRequested {
				errc <- status.Errorf(codes.InvalidArgument, "num_requested must be between 1 and %d, got %d", maxNumRequested, n)
				return
			}
			select {
			case more <- n:
			case <-ctx.Done():
				return
			}
		}
	}()
	pending := first.GetNumRequested()
	p.s.mu.Lock()
	drop := p.s.drop
	p.s.mu.Unlock()
	keepAlive := time.NewTicker(p.s.cfg.KeepAlive)
	defer keepAlive.Stop()
	for {
		var wake <-chan struct{}
		if pending > 0 {
			evs, w := p.s.org.bus.after(pos, match, int(pending))
			wake = w
			if len(evs) > 0 {
				resp := &pubsubapi.FetchResponse{RpcId: rpcID}
				for _, e := range evs {
					resp.Events = append(resp.Events, &pubsubapi.ConsumerEvent{
						Event:    &pubsubapi.ProducerEvent{Id: e.id, SchemaId: e.schemaID, Payload: e.payload},
						ReplayId: replayBytes(e.replay)})
					pos = e.replay
				}
				resp.LatestReplayId = replayBytes(pos)
				pending -= int32(len(evs))
				resp.PendingNumRequested = pending
				if err := stream.Send(resp); err != nil {
					return err
				}
				continue
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-drop:
			return status.Error(codes.Unavailable, "the connection was dropped")
		case err := <-recvErr:
			if errors.Is(err, io.EOF) {
				// The client closed its side: keep delivering what it already asked for.
				recvErr = nil
				continue
			}
			return err
		case n := <-more:
			pending += n
		case <-wake:
		case <-keepAlive.C:
			// The latest replay id of the subscription: what it has consumed, never events it
			// has not been sent (a client may store it and resume from it).
			if err := stream.Send(&pubsubapi.FetchResponse{RpcId: rpcID, LatestReplayId: replayBytes(pos),
				PendingNumRequested: pending}); err != nil {
				return err
			}
		}
	}
}
