// Package api assembles Tollgate's HTTP surface: the routes of API.md and the
// middleware every request passes through (request id and client address,
// deadlines, security headers, body limit, CSRF and CORS, the database
// deadline, bearer authentication), and wires the server (NewServer).
package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"tollgate/api/playground"
	"tollgate/auth"
	"tollgate/graph"
)

// Options are the dependencies of the HTTP handler.
type Options struct {
	Logger *slog.Logger
	// GraphQL serves /graphql; it expects the identity in the request context.
	GraphQL http.Handler
	// Auth authenticates each request's bearer token.
	Auth *auth.Service
	// JWKS is the JSON Web Key Set served at /.well-known/jwks.json.
	JWKS []byte
	// Ready reports whether the database answers (for /readyz).
	Ready        func(context.Context) error
	Playground   bool
	MaxBodyBytes int64
	// TrustedProxies are the proxies whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// CORSOrigins may call /graphql from a browser, with credentials.
	CORSOrigins []string
	// Metrics serves /metrics (Prometheus text format).
	Metrics http.Handler
	// Schema serves GET /schema.graphql (the SDL); nil leaves it 404.
	Schema http.Handler
	// ReadDeadline and WriteDeadline bound each request (zero: 30 s and 60 s).
	ReadDeadline, WriteDeadline time.Duration
	// Federation serves /auth/oidc/…; nil leaves those routes 404.
	Federation *auth.Federation
	// SecureCookies gives the cookies the routes set the __Host- prefix and
	// Secure (production), as graph.Options.SecureCookies does.
	SecureCookies bool
}

// New returns the handler of every route in API.md.
func New(o Options) http.Handler {
	mux := http.NewServeMux()
	// The header checks come first: a refused request costs no body read.
	gql := allowMethods(csrfGuard(limitBody(o.MaxBodyBytes, withIdentity(o.Auth, o.GraphQL))))
	mux.Handle("/graphql", corsFor(o.CORSOrigins, noStore(gql)))
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		// Caches may keep it briefly; a rotation adds the new key ahead of its use.
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Write(o.JWKS)
	})
	if o.Playground {
		pg := playground.Handler()
		mux.Handle("GET /{$}", pg)
		mux.Handle("GET "+playground.Prefix, pg)
		mux.Handle("GET "+playground.PasskeysPath, pg)
	}
	// The pages that mail links open are served in production too: they
	// are how a user who forgot a password gets back in.
	account := playground.AccountHandler()
	mux.Handle("GET /verify-email", account)
	mux.Handle("GET /reset-password", account)
	mux.Handle("GET "+playground.AccountPrefix, account)
	if o.Federation != nil {
		oidcRoutes(mux, o.Federation, o.SecureCookies, o.Logger)
	}
	if o.Metrics != nil {
		mux.Handle("GET /metrics", o.Metrics)
	}
	if o.Schema != nil {
		mux.Handle("GET /schema.graphql", o.Schema)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := o.Ready(ctx); err != nil {
			o.Logger.WarnContext(ctx, "not ready", "request_id", auth.ClientFromContext(ctx).RequestID, "error", err.Error())
			writeText(w, http.StatusServiceUnavailable, "database unavailable")
			return
		}
		writeText(w, http.StatusOK, "ready")
	})
	return withRequest(requestTimes{read: o.ReadDeadline, write: o.WriteDeadline}, o.TrustedProxies, o.Logger, closeAfterChunked(mux))
}

// Per-request deadlines: a client has this long to send its request and to
// read the answer.
const (
	readDeadline  = 30 * time.Second
	writeDeadline = 60 * time.Second
)

// requestTimes are the bounds of one request, each counted from the one
// reading of the clock that withRequest takes as the request begins: the
// read and write deadlines of its connection (zero: readDeadline and
// writeDeadline), and the time it may wait on the database (zero:
// requestDBTimeout). The same reading starts the log line's duration.
type requestTimes struct {
	read, write, db time.Duration
}

// setDeadlines puts the request of w under the read and write deadlines
// from now, WebSocket upgrades included: an upgrade is exempt only once it
// has succeeded, when the socket transport clears them on the hijacked
// connection (graph.upgradeWriter). Exempting every request that says
// "Upgrade: websocket" let one announce a body, never send it, and hold its
// connection for good. It is called where the writer is still net/http's
// own and takes its deadlines without a ResponseController.
func (t requestTimes) setDeadlines(w http.ResponseWriter, now time.Time) {
	if d, ok := w.(deadliner); ok {
		// net/http's writer: no ResponseController to allocate.
		_ = d.SetReadDeadline(now.Add(t.read))
		_ = d.SetWriteDeadline(now.Add(t.write))
	} else if _, wraps := w.(interface{ Unwrap() http.ResponseWriter }); wraps {
		rc := http.NewResponseController(w)
		if rc.SetReadDeadline(now.Add(t.read)) == nil {
			_ = rc.SetWriteDeadline(now.Add(t.write))
		}
	}
	// Otherwise the writer cannot have deadlines (a test recorder):
	// http.ResponseController would only say so.
}

// deadliner is what net/http's ResponseWriter offers http.ResponseController.
type deadliner interface {
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// maxUserAgent bounds what a client can make us store per session.
const maxUserAgent = 256

// requestIDs are a random 64-bit start, drawn once per process, plus a
// counter: unique within a process for 2^64 requests, unrelated from one
// process to the next, and without a crypto/rand read per request. A request
// id names a request in logs; it is no secret and grants nothing, so being
// sequential within a process is harmless.
var (
	requestIDStart = func() uint64 {
		var b [8]byte
		rand.Read(b[:]) // never fails (crypto/rand documents that it panics instead)
		return binary.BigEndian.Uint64(b[:])
	}()
	requestIDCounter atomic.Uint64
)

// nextRequestID returns a new request id: 16 hex digits.
func nextRequestID() string {
	var b [8]byte
	var out [16]byte
	binary.BigEndian.PutUint64(b[:], requestIDStart+requestIDCounter.Add(1))
	hex.Encode(out[:], b[:])
	return string(out[:])
}

// served is what the outer layer keeps for one request, in one allocation:
// the record that the layers below fill in (auth.Request) and the GraphQL
// layer's state that it points to (graph.Exchange), the deadline context
// that also carries the record, the writer that notes what the log line
// needs, and the values of the headers every response carries.
type served struct {
	req      auth.Request
	exchange graph.Exchange
	deadline lazyDeadline
	log      logWriter
	headers  [4]string
	// body is the request's body once read (limitBody).
	body bufferedBody
}

type servedKey struct{}

// Value answers, in the request's context (its deadline), for the record
// and for the served itself.
func (st *served) Value(key any) any {
	if _, ok := key.(servedKey); ok {
		return st
	}
	return st.req.Value(key)
}

// withRequest puts each request under its connection's deadlines, gives it
// an id (echoed in X-Request-Id), records the caller's details in one
// auth.Request for the layers below, puts it under the database timeout
// (WebSocket upgrades excepted: a socket lives longer), sets the headers
// every response carries, and writes the request's log line (logRequest):
// all from one reading of the clock (requestTimes).
func withRequest(times requestTimes, trusted []netip.Prefix, logger *slog.Logger, next http.Handler) http.Handler {
	if times.read <= 0 {
		times.read = readDeadline
	}
	if times.write <= 0 {
		times.write = writeDeadline
	}
	if times.db <= 0 {
		times.db = requestDBTimeout
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The request's one reading of the clock (requestTimes).
		now := time.Now()
		times.setDeadlines(w, now)
		st := &served{}
		id := nextRequestID()
		st.headers = [...]string{id, "nosniff", "no-referrer", "DENY"}
		// Each slice is capped at its length, so that an Add copies instead
		// of writing into its neighbour. The keys are already canonical.
		h := w.Header()
		h["X-Request-Id"] = st.headers[0:1:1]
		h["X-Content-Type-Options"] = st.headers[1:2:2]
		h["Referrer-Policy"] = st.headers[2:3:3]
		h["X-Frame-Options"] = st.headers[3:4:4]
		st.req.Client = auth.Client{
			RequestID: id,
			UserAgent: truncate(cleanHeader(r.UserAgent()), maxUserAgent),
			IP:        clientIP(r, trusted),
		}
		st.req.Transport = &st.exchange
		var ctx context.Context
		if !isWebSocketUpgrade(r) {
			// Armed only if the request waits on something (lazyDeadline):
			// most authenticated requests never do. It carries the record
			// too, without a context.WithValue.
			st.deadline.init(r.Context(), now.Add(times.db), st)
			defer st.deadline.stop()
			ctx = &st.deadline
		} else {
			ctx = auth.WithRequest(r.Context(), &st.req)
		}
		logRequest(logger, &st.log, next, w, r.WithContext(ctx), now)
	})
}

// clientIP is the address of the client: the connection's peer, unless that
// peer is a trusted proxy, in which case X-Forwarded-For is read from the
// right, skipping trusted proxies, to the first address that is not one.
// Hops left of that are the client's to invent and are never believed.
func clientIP(r *http.Request, trusted []netip.Prefix) string {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	addr := peer.Addr().Unmap()
	if !isTrusted(addr, trusted) {
		if peer.Addr().Is4() {
			// The host part of "a.b.c.d:port" is already the address's
			// canonical form (ParseAddrPort refuses any other spelling of
			// IPv4): no need to format a copy.
			return r.RemoteAddr[:strings.LastIndexByte(r.RemoteAddr, ':')]
		}
		return addr.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := parseHop(strings.TrimSpace(hops[i]))
		if err != nil {
			break // garbage: stop at the last address we could trust
		}
		addr = hop.Unmap()
		if !isTrusted(addr, trusted) {
			break
		}
	}
	return addr.String()
}

// parseHop reads an X-Forwarded-For hop: an address, or an address and port
// as some proxies write it.
func parseHop(hop string) (netip.Addr, error) {
	if addr, err := netip.ParseAddr(hop); err == nil {
		return addr, nil
	}
	ap, err := netip.ParseAddrPort(hop)
	return ap.Addr(), err
}

func isTrusted(addr netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// noStore keeps responses that carry tokens out of every cache.
//
// The header's value is shared by every response (no allocation): capped at
// its length, it is copied, never written into, by whoever adds to it.
var noStoreValue = []string{"no-store"}

func noStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Cache-Control"] = noStoreValue[:1:1]
		next.ServeHTTP(w, r)
	})
}

// limitBody reads at most max bytes of the body and answers 413 beyond it, so
// that the GraphQL transport never buffers an unbounded request.
func limitBody(max int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Method == http.MethodGet || r.Method == http.MethodOptions {
			next.ServeHTTP(w, r)
			return
		}
		if r.ContentLength > max {
			writeError(w, http.StatusRequestEntityTooLarge, "BAD_REQUEST", "The request body is too large.")
			return
		}
		body, err := readBody(w, r, max)
		if err != nil {
			// Only here does the target of errors.As escape: a body read
			// whole costs no allocation for it.
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				writeError(w, http.StatusRequestEntityTooLarge, "BAD_REQUEST", "The request body is too large.")
				return
			}
			writeError(w, http.StatusBadRequest, "BAD_REQUEST", "The request body could not be read.")
			return
		}
		if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) > 0 && trimmed[0] == '[' {
			// A JSON array of operations would multiply what one request may
			// attempt (and escape the per-request limits): one operation per request.
			writeError(w, http.StatusBadRequest, "BAD_REQUEST", "Batched requests are not supported: send one operation per request.")
			return
		}
		// The body comes with the request's served, if it has one to spare.
		st, _ := r.Context().Value(servedKey{}).(*served)
		var bb *bufferedBody
		if st != nil && st.body.body == nil {
			bb = &st.body
		} else {
			bb = &bufferedBody{}
		}
		bb.body = body
		bb.Reset(body)
		r.Body = bb
		next.ServeHTTP(w, r)
	})
}

// readBody reads the body once into one buffer. With a Content-Length (at
// most max, checked before), net/http delivers exactly that many bytes, so
// the buffer has that size and no limit reader is needed; without one
// (chunked), the body is read through http.MaxBytesReader.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	if r.ContentLength < 0 {
		return io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	}
	body := make([]byte, r.ContentLength)
	if _, err := io.ReadFull(r.Body, body); err != nil {
		return nil, err
	}
	return body, nil
}

// bufferedBody is the body once read: a reader and a no-op Close, in one
// allocation (io.NopCloser would be a second).
type bufferedBody struct {
	bytes.Reader
	body []byte
}

// Bytes returns the whole body, whatever has been read of it: the GraphQL
// transport decodes it from there instead of copying it out again.
func (b *bufferedBody) Bytes() []byte { return b.body }

// Close does nothing: the connection's body was read to its end.
func (bufferedBody) Close() error { return nil }

// isWebSocketUpgrade reports whether r asks to become a WebSocket, by the
// same rule as the GraphQL transports (a GET whose Upgrade names websocket).
func isWebSocketUpgrade(r *http.Request) bool {
	return graph.IsWebSocketUpgrade(r)
}

// writeError answers with a GraphQL-shaped error, for failures outside GraphQL execution.
func writeError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{
		"errors": []map[string]any{{"message": message, "extensions": map[string]any{"code": code}}},
	})
}

func writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, body+"\n")
}

// cleanHeader makes a header value safe to store and show: bytes that are
// not UTF-8, NUL and other control characters become U+FFFD. A client whose
// User-Agent holds such bytes is still served (PostgreSQL would refuse to
// store them, and the login would fail), and what it sent stays recognisable.
func cleanHeader(v string) string {
	clean := true
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7f || c >= utf8.RuneSelf {
			clean = false
			break
		}
	}
	if clean {
		return v // the usual case: printable ASCII, nothing to copy
	}
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) {
			return utf8.RuneError
		}
		return r
	}, v)
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
