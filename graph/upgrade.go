package graph

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// ReasonOriginNotAllowed refines FORBIDDEN for a WebSocket upgrade from an
// origin that is neither the server's own nor one of CORS_ORIGINS.
const ReasonOriginNotAllowed = "ORIGIN_NOT_ALLOWED"

// IsWebSocketUpgrade reports whether r asks to become a WebSocket: a GET whose
// Upgrade header names "websocket". Any other Upgrade (curl's "h2c" on a
// POST, say) is an ordinary request: it is served by the HTTP transports and
// buys no exemption from any deadline.
func IsWebSocketUpgrade(r *http.Request) bool {
	return r.Method == http.MethodGet && headerHasToken(r.Header, "Upgrade", "websocket")
}

// headerHasToken reports whether the comma-separated values of header name
// hold token, compared without regard to case (RFC 9110, section 5.6.1).
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// refuse answers a request that no transport will serve with the
// contract's error shape, so that every refusal is JSON a client can read.
func refuse(w http.ResponseWriter, status int, code, reason, message string) {
	ext := map[string]any{"code": code}
	if reason != "" {
		ext["reason"] = reason
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{
		"errors": []map[string]any{{"message": message, "extensions": ext}},
	})
}

// checkHandshake applies RFC 6455 section 4.2.1 to an upgrade request before
// the WebSocket library sees it. The library would refuse the same requests,
// but in plain text and with a log line per request (gqlgen's), which lets
// anyone write to the log; here the refusal is JSON and silent. A handshake
// carries no body: one that announces a body is refused, so that it is never
// hijacked with bytes still to come (and never escapes the read deadline).
func checkHandshake(w http.ResponseWriter, r *http.Request) bool {
	switch {
	case r.ProtoMajor != 1 || !r.ProtoAtLeast(1, 1):
		refuse(w, http.StatusHTTPVersionNotSupported, codeBadRequest, "", "A WebSocket upgrade needs HTTP/1.1.")
	case !headerHasToken(r.Header, "Connection", "Upgrade"):
		w.Header().Set("Connection", "Upgrade")
		w.Header().Set("Upgrade", "websocket")
		refuse(w, http.StatusUpgradeRequired, codeBadRequest, "", "A WebSocket upgrade needs Connection: Upgrade.")
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		w.Header().Set("Sec-WebSocket-Version", "13")
		refuse(w, http.StatusUpgradeRequired, codeBadRequest, "", "Only WebSocket version 13 is supported.")
	case !validKey(r.Header.Values("Sec-WebSocket-Key")):
		refuse(w, http.StatusBadRequest, codeBadRequest, "", "The Sec-WebSocket-Key header is missing or invalid.")
	case r.ContentLength != 0 || len(r.TransferEncoding) > 0:
		refuse(w, http.StatusBadRequest, codeBadRequest, "", "A WebSocket upgrade carries no body.")
	default:
		return true
	}
	return false
}

// canHijack reports whether w, or a writer it wraps (by the Unwrap
// convention of http.ResponseController), can hand over its connection:
// without that the library would answer 101 and then fail.
// A wrapper that has both Unwrap and Hijack forwards its Hijack (the request
// log's writer does), so the writer it wraps is the one asked.
func canHijack(w http.ResponseWriter) bool {
	for {
		if u, ok := w.(interface{ Unwrap() http.ResponseWriter }); ok {
			w = u.Unwrap()
			continue
		}
		_, ok := w.(http.Hijacker)
		return ok
	}
}

func validKey(keys []string) bool {
	if len(keys) != 1 {
		return false
	}
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(keys[0]))
	return err == nil && len(k) == 16
}

// originPolicy decides which browser origins may open a socket: the
// server's own and the configured ones, compared exactly (scheme, host and
// port), as CORS compares them. A page on http://app.example.com is not
// https://app.example.com: the first can be injected by anyone on the path.
type originPolicy struct {
	allowed map[string]bool
}

func newOriginPolicy(origins []string) originPolicy {
	p := originPolicy{allowed: map[string]bool{}}
	for _, o := range origins {
		if n, ok := normalOrigin(o); ok {
			p.allowed[n] = true
		}
	}
	return p
}

// allows reports whether r's Origin may open a socket. A request without an
// Origin comes from a program, not a browser: the check protects browsers
// from pages of other sites (cross-site WebSocket hijacking), and a program
// could send any Origin it liked. "null" (sandboxed frames, file: pages) is
// never allowed.
//
// The server's own origin is the Host it was reached by, with https when the
// connection is TLS or the proxy in front says so in X-Forwarded-Proto.
// Believing that header is safe here: a page cannot set it on a socket
// handshake, and whoever can send it directly can send any Origin too.
func (p originPolicy) allows(r *http.Request) bool {
	values := r.Header.Values("Origin")
	if len(values) == 0 {
		return true
	}
	if len(values) > 1 {
		return false
	}
	origin, ok := normalOrigin(values[0])
	if !ok {
		return false
	}
	if p.allowed[origin] {
		return true
	}
	scheme := "http"
	if r.TLS != nil || strings.EqualFold(strings.TrimSpace(strings.Split(r.Header.Get("X-Forwarded-Proto"), ",")[0]), "https") {
		scheme = "https"
	}
	own, ok := normalOrigin(scheme + "://" + r.Host)
	return ok && origin == own
}

// normalOrigin returns origin as scheme://host[:port] in lower case, without
// a default port, or false if it is not an http(s) origin.
func normalOrigin(origin string) (string, bool) {
	u, err := url.Parse(strings.TrimSuffix(origin, "/"))
	if err != nil || u.Host == "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	host, port := strings.ToLower(u.Hostname()), u.Port()
	switch {
	case scheme != "http" && scheme != "https":
		return "", false
	case scheme == "http" && port == "80", scheme == "https" && port == "443":
		port = ""
	}
	if port != "" {
		host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return scheme + "://" + host, true
}

// upgradeWriter is the ResponseWriter handed to the WebSocket library. Its
// Hijack clears the read and write deadlines of the connection at the moment
// the upgrade succeeds: every request, upgrades included, runs under the
// HTTP deadlines (api.requestDeadlines) so that a slow client cannot hold a
// connection open by pretending to upgrade, and net/http documents that a
// hijacked connection may keep them (its code clears them today; the
// socket's life should not rest on that), where they would cut a live socket.
// Any error the library would answer in plain text is answered as JSON, and
// gqlgen's plain-text word after it is dropped.
type upgradeWriter struct {
	http.ResponseWriter
	refused bool
	// conn is the hijacked connection, once the upgrade has succeeded.
	conn *watchedConn
}

func (u *upgradeWriter) WriteHeader(status int) {
	if u.refused {
		return // gqlgen's own "unable to upgrade" after the library's refusal
	}
	if status < 400 {
		u.ResponseWriter.WriteHeader(status)
		return
	}
	u.refused = true
	refuse(u.ResponseWriter, status, codeBadRequest, "", "The WebSocket upgrade failed.")
}

func (u *upgradeWriter) Write(b []byte) (int, error) {
	if u.refused {
		return len(b), nil // the library's plain-text message, already replaced
	}
	return u.ResponseWriter.Write(b)
}

func (u *upgradeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(u.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		conn.Close()
		return nil, nil, err
	}
	u.conn = &watchedConn{Conn: conn, done: make(chan struct{})}
	return u.conn, brw, nil
}

// watchedConn is a hijacked connection that says when it is closed: the
// WebSocket library closes it at the end of the close handshake (or at once
// when there is none), which is when the socket is really gone.
type watchedConn struct {
	net.Conn
	once sync.Once
	done chan struct{}
}

func (c *watchedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { close(c.done) })
	return err
}
