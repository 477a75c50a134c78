package vendorsim

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Serve listens on addr ("127.0.0.1:0" picks a free port) and serves h there in the background
// over protocols (nil: HTTP/1.1 and, with TLS, HTTP/2); it returns the server and its base URL.
// A serving error other than the server's closing goes to log.
func Serve(addr string, h http.Handler, protocols *http.Protocols, log *slog.Logger) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	return ServeOn(ln, h, protocols, log), "http://" + ln.Addr().String(), nil
}

// ServeOn serves h on ln in the background as Serve does, for a simulator that wraps its
// listener (in TLS, say) first.
func ServeOn(ln net.Listener, h http.Handler, protocols *http.Protocols, log *slog.Logger) *http.Server {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, Protocols: protocols}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("serve", "err", err)
		}
	}()
	return srv
}

// Shutdown stops a server Serve started, letting requests in flight finish for up to five
// seconds; a nil server (never started) is nothing to stop.
func Shutdown(srv *http.Server) error {
	if srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(ctx)
}

// Listener is a simulator that serves once started: Start serves on addr and returns its base URL.
type Listener interface {
	Instance
	Start(addr string) (string, error)
}

// Launch is the Start of a simulator that build makes from the options and that then serves on
// their address.
func Launch[S Listener](build func(o Options) (S, error)) Start {
	return func(_ context.Context, o Options) (Instance, error) {
		srv, err := build(o)
		if err != nil {
			return nil, err
		}
		if _, err := srv.Start(o.Addr); err != nil {
			return nil, err
		}
		return srv, nil
	}
}
