package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"tollgate/db/dbtest"
)

func TestReadyz_FollowsTheDatabase(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		if res := s.send(t, "GET", "/healthz", nil, ""); res.Status != 200 {
			t.Fatalf("healthz = %d", res.Status)
		}
		if res := s.send(t, "GET", "/readyz", nil, ""); res.Status != 200 {
			t.Fatalf("readyz = %d", res.Status)
		}
		s.DB.Close()
		if res := s.send(t, "GET", "/readyz", nil, ""); res.Status != 503 {
			t.Errorf("readyz with the database closed = %d, want 503", res.Status)
		}
		if res := s.send(t, "GET", "/healthz", nil, ""); res.Status != 200 {
			t.Errorf("healthz with the database closed = %d, want 200", res.Status)
		}
	})
}

// A database failure is an INTERNAL_SERVER_ERROR with a generic message; the
// detail goes to the log with the request id, and no SQL or driver text leaks.
func TestInternalError_IsGenericAndLogged(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		p := s.register(t, "alice", "correct horse")
		s.DB.Close()
		for _, res := range []gqlResponse{
			s.login(t, "", "alice", "correct horse"),
			s.post(t, p.AccessToken, `{ me { id } }`, nil),
		} {
			e := res.wantError(t, "INTERNAL_SERVER_ERROR", "")
			if e.Message != "Internal server error." {
				t.Errorf("message = %q", e.Message)
			}
			for _, leak := range []string{"sql", "database", "closed", "SELECT", "users"} {
				if strings.Contains(res.Raw, leak) {
					t.Errorf("response mentions %q: %s", leak, res.Raw)
				}
			}
			reqID := res.Header.Get("X-Request-Id")
			if reqID == "" || e.Extensions["requestId"] != reqID {
				t.Errorf("requestId %v, header %q", e.Extensions["requestId"], reqID)
			}
			if !strings.Contains(s.Log.String(), `"request_id":"`+reqID+`"`) {
				t.Errorf("the log has no line for request %s:\n%s", reqID, s.Log.String())
			}
		}
	})
}

func TestRequest_BodyLimit(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), map[string]string{"MAX_BODY_BYTES": "2048"})
	big := `{"query":"{ __typename }","variables":{"pad":"` + strings.Repeat("x", 4096) + `"}}`
	res := s.send(t, "POST", "/graphql", http.Header{"Content-Type": {"application/json"}}, big)
	if res.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("status = %d, want 413", res.Status)
	}
	res.wantError(t, "BAD_REQUEST", "")

	// Without a Content-Length (chunked), the limit still holds.
	req, _ := http.NewRequest("POST", s.URL+"/graphql", struct{ *strings.Reader }{strings.NewReader(big)})
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if req.ContentLength != -1 && req.ContentLength != 0 {
		t.Fatalf("the request was not chunked")
	}
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked: status = %d, want 413", resp.StatusCode)
	}

	small := s.send(t, "POST", "/graphql", http.Header{"Content-Type": {"application/json"}}, `{"query":"{ __typename }"}`)
	if small.Status != 200 {
		t.Errorf("small request: %d %s", small.Status, small.Raw)
	}
}

// A request that is not valid GraphQL over HTTP is BAD_REQUEST, and the error
// never quotes the body (which may hold a password).
func TestRequest_MalformedJSONIsNotEchoed(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	for _, body := range []string{
		`{"query":"mutation { login(username: \"alice\", password: \"hunter2-secret\") { accessToken } }"`,
		`[{"query":"mutation { login(username: \"alice\", password: \"hunter2-secret\") { accessToken } }"}]`,
		`hunter2-secret`,
	} {
		res := s.send(t, "POST", "/graphql", http.Header{"Content-Type": {"application/json"}}, body)
		if res.Status != 400 {
			t.Errorf("status = %d, want 400", res.Status)
		}
		res.wantError(t, "BAD_REQUEST", "")
		if strings.Contains(res.Raw, "hunter2") {
			t.Errorf("the error echoes the body: %s", res.Raw)
		}
	}
}

func TestRequest_ParseAndValidationErrors(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	for query, code := range map[string]string{
		`{ protected `: "GRAPHQL_PARSE_FAILED",
		`{ nope }`:     "GRAPHQL_VALIDATION_FAILED",
		`mutation { login(username: "a") { accessToken } }`: "GRAPHQL_VALIDATION_FAILED",
	} {
		res := s.post(t, "", query, nil)
		if res.Status < 400 || res.Status > 499 {
			t.Errorf("%s: status %d, want 4xx", query, res.Status)
		}
		res.wantError(t, code, "")
	}
	// A variable of the wrong type is refused before execution.
	res := s.post(t, "", `mutation($p: String!) { login(username: "alice", password: $p) { accessToken } }`, map[string]any{"p": map[string]any{"secret-value": 1}})
	res.wantError(t, "GRAPHQL_VALIDATION_FAILED", "")
	if strings.Contains(res.Raw, "secret-value") {
		t.Errorf("the error echoes the variable: %s", res.Raw)
	}
}

func TestResponses_CarrySecurityHeaders(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	gql := s.post(t, "", `{ __typename }`, nil)
	if got := gql.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("/graphql Cache-Control = %q, want no-store", got)
	}
	for _, path := range []string{"/", "/healthz"} {
		res := s.send(t, "GET", path, nil, "")
		if res.Header.Get("X-Content-Type-Options") != "nosniff" || res.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s headers: %v", path, res.Header)
		}
	}
}

func TestPlayground_OnlyInDevelopment(t *testing.T) {
	dev := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	res := dev.send(t, "GET", "/", nil, "")
	if res.Status != 200 || !strings.Contains(res.Raw, "/graphql") {
		t.Errorf("development playground: %d", res.Status)
	}
	prod := newTestServer(t, dbtest.URL(t, "sqlite"), map[string]string{"APP_ENV": "production"})
	if res := prod.send(t, "GET", "/", nil, ""); res.Status != 404 {
		t.Errorf("production playground: %d, want 404", res.Status)
	}
	// Introspection follows the same rule.
	intro := `{ __schema { queryType { name } } }`
	if res := dev.post(t, "", intro, nil); len(res.Errors) != 0 {
		t.Errorf("development introspection: %s", res.Raw)
	}
	if res := prod.post(t, "", intro, nil); len(res.Errors) == 0 {
		t.Errorf("production introspection answered: %s", res.Raw)
	}
	var on map[string]json.RawMessage
	prodOn := newTestServer(t, dbtest.URL(t, "sqlite"), map[string]string{"APP_ENV": "production", "INTROSPECTION": "on"})
	prodOn.post(t, "", intro, nil).field(t, "__schema", &on)
}
