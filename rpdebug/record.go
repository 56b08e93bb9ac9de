package rpdebug

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// maxBody bounds what the relying party reads of one answer; maxShown what a page shows of
// one body.
const (
	maxBody  = 1 << 20
	maxShown = 64 << 10
)

// Exchange is one HTTP request the relying party made and the answer it got, as they went
// over the wire (bodies cut at 64 KiB).
type Exchange struct {
	// Purpose says what the request was for: "discovery", "registration", "token", …
	Purpose        string
	Method         string
	URL            string
	RequestHeader  string
	RequestBody    string
	Status         string
	ResponseHeader string
	ResponseBody   string
	// Err is the transport's error, when no answer came.
	Err  string
	Took time.Duration
}

type purposeKey struct{}

// withPurpose labels the requests made with ctx for the exchange log.
func withPurpose(ctx context.Context, purpose string) context.Context {
	return context.WithValue(ctx, purposeKey{}, purpose)
}

// recorder is an http.RoundTripper that keeps every exchange that goes through it, in order.
type recorder struct {
	base http.RoundTripper

	mu  sync.Mutex
	log []Exchange
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	ex := Exchange{Method: req.Method, URL: req.URL.String(), RequestHeader: headerText(req.Header)}
	ex.Purpose, _ = req.Context().Value(purposeKey{}).(string)
	if req.Body != nil {
		b, err := io.ReadAll(io.LimitReader(req.Body, maxBody))
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("reading the request body: %w", err)
		}
		ex.RequestBody = shown(b)
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.ContentLength = int64(len(b))
	}
	start := time.Now()
	resp, err := r.base.RoundTrip(req)
	ex.Took = time.Since(start).Round(time.Millisecond)
	if err != nil {
		ex.Err = err.Error()
		r.add(ex)
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
	ex.Status = resp.Proto + " " + resp.Status
	ex.ResponseHeader = headerText(resp.Header)
	ex.ResponseBody = shown(b)
	if err != nil {
		ex.Err = "reading the answer: " + err.Error()
	}
	r.add(ex)
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	return resp, nil
}

func (r *recorder) add(ex Exchange) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = append(r.log, ex)
}

// exchanges returns the exchanges so far.
func (r *recorder) exchanges() []Exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Exchange(nil), r.log...)
}

func headerText(h http.Header) string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		for _, v := range h[k] {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	return b.String()
}

func shown(b []byte) string {
	if len(b) > maxShown {
		return string(b[:maxShown]) + fmt.Sprintf("\n… (%d bytes in all)", len(b))
	}
	return string(b)
}
