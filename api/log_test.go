package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"tollgate/db"
	"tollgate/db/dbtest"
)

// requestLines returns the request log lines of s, decoded.
func (s *testServer) requestLines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s.Log.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		if m["msg"] == "request" {
			out = append(out, m)
		}
	}
	return out
}

// lineFor returns the request line with requestID.
func lineFor(t *testing.T, lines []map[string]any, requestID string) map[string]any {
	t.Helper()
	for _, l := range lines {
		if l["request_id"] == requestID {
			return l
		}
	}
	t.Fatalf("no request line with request_id %q", requestID)
	return nil
}

// Each request writes exactly one line, with what an operator needs to find
// it (request id, operation, user, address, status, size, duration), and
// nothing a thief could use: no token, password, cookie or variable.
func TestRequestLog_OneLinePerRequestWithoutSecrets(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, db.SQLite), nil)
	const password = "correct horse battery"
	secrets := []string{password}
	postJSON := func(header http.Header, query string, vars map[string]any) gqlResponse {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
		header.Set("Content-Type", "application/json")
		return s.send(t, http.MethodPost, "/graphql", header, string(body))
	}

	// A sign-up whose refresh token goes into a cookie, a login whose refresh
	// token comes back in the body, a refresh with each.
	res := postJSON(http.Header{}, `mutation SignUp($u: String!, $p: String!) { register(username: $u, password: $p, cookie: true) { accessToken } }`,
		map[string]any{"u": "alice", "p": password})
	var cookie *http.Cookie
	for _, c := range (&http.Response{Header: res.Header}).Cookies() {
		cookie = c
	}
	if cookie == nil {
		t.Fatalf("no refresh cookie: %s", res.Raw)
	}
	secrets = append(secrets, cookie.Value)
	var signUp authPayload
	res.field(t, "register", &signUp)
	secrets = append(secrets, signUp.AccessToken)

	p := s.mustLogin(t, "alice", password)
	secrets = append(secrets, p.AccessToken, *p.RefreshToken)
	var rotated authPayload
	postJSON(http.Header{}, `mutation Rotate($t: String) { refreshToken(token: $t) { accessToken refreshToken } }`,
		map[string]any{"t": *p.RefreshToken}).field(t, "refreshToken", &rotated)
	secrets = append(secrets, rotated.AccessToken, *rotated.RefreshToken)
	res = postJSON(http.Header{"Cookie": {cookie.String()}}, `mutation { refreshToken { accessToken } }`, nil)
	var fromCookie authPayload
	res.field(t, "refreshToken", &fromCookie)
	secrets = append(secrets, fromCookie.AccessToken)
	for _, c := range (&http.Response{Header: res.Header}).Cookies() {
		secrets = append(secrets, c.Value)
	}

	me := postJSON(http.Header{"Authorization": {"Bearer " + p.AccessToken}}, `query Me { me { id } }`, nil)
	if len(me.Errors) > 0 {
		t.Fatalf("me: %s", me.Raw)
	}
	s.send(t, http.MethodGet, "/healthz", http.Header{}, "")

	lines := s.requestLines(t)
	if len(lines) != 6 {
		t.Errorf("%d request lines for 6 requests:\n%s", len(lines), s.Log.String())
	}
	line := lineFor(t, lines, me.Header.Get("X-Request-Id"))
	want := map[string]any{
		"method": "POST", "path": "/graphql", "status": 200.0, "bytes": float64(len(me.Raw)),
		"operation": "Me", "user_id": p.User.ID, "client_ip": "127.0.0.1",
	}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("%s = %#v, want %#v (line %v)", k, line[k], v, line)
		}
	}
	if d, ok := line["duration_ms"].(float64); !ok || d < 0 || d > 10_000 {
		t.Errorf("duration_ms = %#v", line["duration_ms"])
	}
	for _, l := range lines {
		for _, k := range []string{"request_id", "method", "path", "status", "bytes", "duration_ms", "client_ip"} {
			if _, ok := l[k]; !ok {
				t.Errorf("line %v has no %s", l, k)
			}
		}
	}
	if l := lineFor(t, lines, res.Header.Get("X-Request-Id")); l["operation"] != nil || l["user_id"] != nil {
		t.Errorf("an anonymous refresh without a bearer token logged %v", l)
	}
	if l := lines[0]; l["operation"] != "SignUp" {
		t.Errorf("first line %v, want operation SignUp", l)
	}

	log := s.Log.String()
	for _, secret := range secrets {
		if secret != "" && strings.Contains(log, secret) {
			t.Errorf("the log holds a secret (%.8s…)", secret)
		}
	}
	for _, word := range []string{"Bearer", "tollgate_refresh", "variables"} {
		if strings.Contains(log, word) {
			t.Errorf("the log mentions %q", word)
		}
	}
}

// LOG_FORMAT=text writes the same line as key=value text; LOG_LEVEL=warn
// silences the request lines.
func TestRequestLog_FollowsFormatAndLevel(t *testing.T) {
	text := newTestServer(t, dbtest.URL(t, db.SQLite), map[string]string{"LOG_FORMAT": "text"})
	res := text.post(t, "", `query Ping { __typename }`, nil)
	log := text.Log.String()
	for _, want := range []string{"msg=request", "request_id=" + res.Header.Get("X-Request-Id"), "method=POST",
		"path=/graphql", "status=200", "operation=Ping", "client_ip=127.0.0.1", "duration_ms="} {
		if !strings.Contains(log, want) {
			t.Errorf("text log lacks %q:\n%s", want, log)
		}
	}

	quiet := newTestServer(t, dbtest.URL(t, db.SQLite), map[string]string{"LOG_LEVEL": "warn"})
	quiet.post(t, "", `query Ping { __typename }`, nil)
	if log := quiet.Log.String(); strings.Contains(log, `"msg":"request"`) {
		t.Errorf("LOG_LEVEL=warn still logs requests:\n%s", log)
	}
}

// A WebSocket upgrade is logged when the connection is taken over, with
// status 101, while the socket is still open; the token sent in
// connection_init is not logged.
func TestRequestLog_WebSocketUpgradeLoggedAtOnce(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, db.SQLite), nil)
	p := s.register(t, "alice", "correct horse")
	c := s.connect(t, p.AccessToken)
	var upgrade map[string]any
	for _, l := range s.requestLines(t) {
		if l["status"] == 101.0 {
			upgrade = l
		}
	}
	if upgrade == nil || upgrade["method"] != "GET" || upgrade["path"] != "/graphql" || upgrade["duration_ms"] == nil {
		t.Fatalf("no upgrade line while the socket is open:\n%s", s.Log.String())
	}
	c.conn.CloseNow()
	// Closing must not write a second line for the same request.
	deadline := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(deadline) {
		n := 0
		for _, l := range s.requestLines(t) {
			if l["request_id"] == upgrade["request_id"] {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d lines for the upgrade request", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if strings.Contains(s.Log.String(), p.AccessToken) {
		t.Error("the log holds the socket's token")
	}
}
