package main

import (
	"flag"
	"fmt"
	"time"

	"github.com/id4me/id4me-registry/server"
)

// limitFlags are serve's flags for what clients can hold of the server, and for the
// operator's listener.
type limitFlags struct {
	adminAddr        string
	pprof            bool
	grpcMaxIdle      time.Duration
	grpcMaxStreams   int
	grpcMaxConns     int
	watchMaxPerAgent int
	inFlight         []inFlightFlag
}

// inFlightFlag is the flag bounding one class of calls.
type inFlightFlag struct {
	class server.CallClass
	name  string
	value *int
}

func addLimitFlags(fs *flag.FlagSet) *limitFlags {
	f := &limitFlags{}
	fs.StringVar(&f.adminAddr, "admin-addr", "127.0.0.1:9090", "operator's listen address, plain HTTP without authentication: /metrics, /readyz, pprof (--pprof); keep it on loopback or an operators' network")
	fs.BoolVar(&f.pprof, "pprof", false, "serve net/http/pprof under /debug/pprof/ on --admin-addr")
	fs.DurationVar(&f.grpcMaxIdle, "grpc-max-idle", server.DefaultMaxConnectionIdle, "close a gRPC connection that has carried no call this long (negative: never)")
	fs.IntVar(&f.grpcMaxStreams, "grpc-max-streams", server.DefaultMaxStreamsPerConn, "concurrent calls on one gRPC connection; clients queue the rest (negative: no limit)")
	fs.IntVar(&f.grpcMaxConns, "grpc-max-conns", server.DefaultMaxConns, "open gRPC connections; further ones are closed as soon as they are accepted (negative: no limit)")
	fs.IntVar(&f.watchMaxPerAgent, "watch-max-per-agent", server.DefaultMaxWatchesPerAgent, "WatchEvents streams an agent may have open on this instance at once (negative: no limit)")
	defaults := server.DefaultMaxInFlight()
	for _, c := range []struct {
		class      server.CallClass
		name, what string
	}{
		{server.ClassRead, "max-inflight-reads", "reads (Get*, List*, ResolveIdentifier)"},
		{server.ClassWrite, "max-inflight-writes", "writes (the other unary methods)"},
		{server.ClassDNS, "max-inflight-dns", "DNS checks (VerifyChallenge)"},
		{server.ClassWatch, "max-inflight-watches", "WatchEvents streams"},
	} {
		v := fs.Int(c.name, defaults[c.class], c.what+" in progress at once; further ones get RESOURCE_EXHAUSTED (OVERLOADED) with a retry delay (negative: no limit)")
		f.inFlight = append(f.inFlight, inFlightFlag{c.class, c.name, v})
	}
	return f
}

// check refuses 0, which would read as "no limit" to some and as "the default" to others.
func (f *limitFlags) check() error {
	zero := map[string]bool{
		"grpc-max-idle": f.grpcMaxIdle == 0, "grpc-max-streams": f.grpcMaxStreams == 0,
		"grpc-max-conns": f.grpcMaxConns == 0, "watch-max-per-agent": f.watchMaxPerAgent == 0,
	}
	for _, c := range f.inFlight {
		zero[c.name] = *c.value == 0
	}
	for name, isZero := range zero {
		if isZero {
			return fmt.Errorf("--%s must not be 0; a negative value turns the limit off", name)
		}
	}
	return nil
}

// limits returns the server's limits as the flags set them.
func (f *limitFlags) limits() server.Limits {
	l := server.Limits{
		MaxConnectionIdle: f.grpcMaxIdle, MaxStreamsPerConn: f.grpcMaxStreams, MaxConns: f.grpcMaxConns,
		MaxWatchesPerAgent: f.watchMaxPerAgent, MaxInFlight: make(map[server.CallClass]int),
	}
	for _, c := range f.inFlight {
		l.MaxInFlight[c.class] = *c.value
	}
	return l
}
