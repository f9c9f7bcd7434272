package api_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"tollgate/db/dbtest"
)

// Aliases cannot turn one request into many credential attempts: an
// operation with more than one of login, register, refreshToken,
// changePassword, resetPassword and loginWithPasskey is refused before any
// resolver runs.
func TestBatching_CredentialMutationsAreRefused(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	p := s.register(t, "alice", "correct horse")
	before := s.App.Hasher.Runs()
	var counted int
	s.DB.Get(&counted, `SELECT coalesce(sum(hits), 0) FROM rate_limits`)
	for name, query := range map[string]string{
		"aliased logins": `mutation { a: login(username: "alice", password: "guess1") { accessToken }
			b: login(username: "alice", password: "guess2") { accessToken } }`,
		"login and register": `mutation { login(username: "alice", password: "guess1") { accessToken }
			register(username: "bob", password: "correct horse") { accessToken } }`,
		"refresh twice": `mutation { a: refreshToken(token: "x") { accessToken } b: refreshToken(token: "y") { accessToken } }`,
		"through fragments": `mutation { ...A ...B } fragment A on Mutation { login(username: "alice", password: "g1") { accessToken } }
			fragment B on Mutation { x: login(username: "alice", password: "g2") { accessToken } }`,
		"changePassword and login": `mutation { changePassword(currentPassword: "a", newPassword: "bbbbbbbb")
			login(username: "alice", password: "g") { accessToken } }`,
		"aliased passkey sign-ins": `mutation { a: loginWithPasskey(response: {id: "x"}) { accessToken }
			b: loginWithPasskey(response: {id: "y"}) { accessToken } }`,
	} {
		t.Run(name, func(t *testing.T) {
			res := s.post(t, p.AccessToken, query, nil)
			res.wantError(t, "GRAPHQL_VALIDATION_FAILED", "BATCHED_AUTH")
			if res.Status < 400 || res.Status > 499 {
				t.Errorf("status %d, want 4xx", res.Status)
			}
		})
	}
	if runs := s.App.Hasher.Runs() - before; runs != 0 {
		t.Errorf("%d passwords were hashed by refused operations", runs)
	}
	var hits int
	s.DB.Get(&hits, `SELECT coalesce(sum(hits), 0) FROM rate_limits`)
	if hits != counted {
		t.Errorf("refused operations reached the rate limiter (%d attempts counted, %d before): they ran", hits, counted)
	}
	// One credential mutation beside other fields is fine.
	var out authPayload
	s.post(t, "", `mutation { login(username: "alice", password: "correct horse") { accessToken } }`, nil).field(t, "login", &out)
}

// A JSON array of operations is refused whole.
func TestBatching_JSONArrayIsRefused(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	s.register(t, "alice", "correct horse")
	body := `[` + strings.Repeat(`{"query":"mutation { login(username: \"alice\", password: \"guess\") { accessToken } }"},`, 50) +
		`{"query":"{ __typename }"}]`
	res := s.send(t, "POST", "/graphql", http.Header{"Content-Type": {"application/json"}}, body)
	if res.Status != 400 {
		t.Errorf("status %d, want 400", res.Status)
	}
	res.wantError(t, "BAD_REQUEST", "")
	if n := s.App.Hasher.Runs(); n != 1 { // the register above
		t.Errorf("%d hashes: the batch ran", n)
	}
}

func TestQueryLimits(t *testing.T) {
	s, admin := newAdmin(t, dbtest.URL(t, "sqlite"))
	for _, tc := range []struct {
		name, query, reason string
	}{
		{"too costly", `{ a: users(first: 100) { edges { node { id username role createdAt } cursor } } b: users(first: 100) { edges { node { id username role createdAt } cursor } } }`, "COMPLEXITY"},
		{"too many aliases", "{ " + aliases(60) + " }", "ALIASES"},
		{"too many fields", "{ me { " + strings.Repeat("id username role createdAt ", 130) + "} }", "FIELDS"},
		{"too long", "{ me { id } } #" + strings.Repeat("x", 100_001), "QUERY_TOO_LONG"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := s.post(t, admin.AccessToken, tc.query, nil)
			res.wantError(t, "GRAPHQL_VALIDATION_FAILED", tc.reason)
			if res.Status < 400 || res.Status > 499 {
				t.Errorf("status %d, want 4xx", res.Status)
			}
		})
	}

	// Depth: MAX_DEPTH=3 refuses users { edges { node { id } } } (depth 4), allows depth 3.
	shallow := newTestServer(t, dbtest.URL(t, "sqlite"), map[string]string{"MAX_DEPTH": "3", "ADMIN_USERNAME": "root", "ADMIN_PASSWORD": "admin password"})
	tok := shallow.mustLogin(t, "root", "admin password").AccessToken
	shallow.post(t, tok, `{ users { edges { node { id } } } }`, nil).wantError(t, "GRAPHQL_VALIDATION_FAILED", "DEPTH")
	if res := shallow.post(t, tok, `{ users { edges { cursor } } }`, nil); len(res.Errors) != 0 {
		t.Errorf("depth 3 refused: %s", res.Raw)
	}
	// Fragments count toward depth too.
	shallow.post(t, tok, `{ users { ...E } } fragment E on UserConnection { edges { node { id } } }`, nil).
		wantError(t, "GRAPHQL_VALIDATION_FAILED", "DEPTH")
	// The introspection subtree is exempt: GraphiQL's full query is deep.
	if res := shallow.post(t, "", introspectionQuery, nil); len(res.Errors) != 0 {
		t.Errorf("introspection refused: %.300s", res.Raw)
	}

	// Complexity follows the page size: a small page passes.
	if res := s.post(t, admin.AccessToken, `{ users(first: 10) { edges { node { id username } } } }`, nil); len(res.Errors) != 0 {
		t.Errorf("a small page refused: %s", res.Raw)
	}
	// MAX_COMPLEXITY is configurable.
	cheap := newTestServer(t, dbtest.URL(t, "sqlite"), map[string]string{"MAX_COMPLEXITY": "10"})
	cheap.post(t, "", `{ notes { id } }`, nil).wantError(t, "GRAPHQL_VALIDATION_FAILED", "COMPLEXITY")
}

func aliases(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "a%d: __typename ", i)
	}
	return b.String()
}

// The query GraphiQL sends to draw its schema explorer (graphql-js
// getIntrospectionQuery with descriptions).
const introspectionQuery = `query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } }
}`

// Automatic persisted queries: a client sends the hash of a query it sent
// before, not the text.
func TestPersistedQueries(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	p := s.register(t, "alice", "correct horse")
	query := `{ protected }`
	sum := sha256.Sum256([]byte(query))
	ext := fmt.Sprintf(`{"persistedQuery":{"version":1,"sha256Hash":%q}}`, hex.EncodeToString(sum[:]))
	h := http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + p.AccessToken}}

	res := s.send(t, "POST", "/graphql", h, `{"extensions":`+ext+`}`)
	if len(res.Errors) != 1 || res.Errors[0].Message != "PersistedQueryNotFound" {
		t.Fatalf("unknown hash: %s", res.Raw)
	}
	res = s.send(t, "POST", "/graphql", h, fmt.Sprintf(`{"query":%q,"extensions":%s}`, query, ext))
	if string(res.Data["protected"]) != protectedAnswer {
		t.Fatalf("register: %s", res.Raw)
	}
	res = s.send(t, "POST", "/graphql", h, `{"extensions":`+ext+`}`)
	if string(res.Data["protected"]) != protectedAnswer {
		t.Fatalf("by hash: %s", res.Raw)
	}
	// And over GET, as Apollo Client's persisted-query link sends it.
	res = s.send(t, "GET", "/graphql?extensions="+url.QueryEscape(ext), http.Header{
		"Authorization": {"Bearer " + p.AccessToken}, "Apollo-Require-Preflight": {"true"}}, "")
	if string(res.Data["protected"]) != protectedAnswer {
		t.Fatalf("by hash over GET: %s", res.Raw)
	}
}

// In production, introspection, suggestions and the Playground are off.
func TestProduction_HidesTheSchema(t *testing.T) {
	prod := newTestServer(t, dbtest.URL(t, "sqlite"), map[string]string{"APP_ENV": "production"})
	res := prod.post(t, "", `{ protectd }`, nil)
	res.wantError(t, "GRAPHQL_VALIDATION_FAILED", "")
	if strings.Contains(res.Raw, "Did you mean") || strings.Contains(res.Raw, "protected") {
		t.Errorf("production suggests fields: %s", res.Raw)
	}
	if res := prod.post(t, "", `{ __type(name: "User") { fields { name } } }`, nil); len(res.Errors) == 0 {
		t.Errorf("production answers __type: %s", res.Raw)
	}
	dev := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	if res := dev.post(t, "", `{ protectd }`, nil); !strings.Contains(res.Raw, "Did you mean") {
		t.Errorf("development gives no suggestion: %s", res.Raw)
	}
}

// Requests a page on another site could make a browser send without a
// preflight are refused; JSON, Apollo's headers and mutations over GET are
// handled as the contract says.
func TestCSRF(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	p := s.register(t, "alice", "correct horse")
	logout := `{"query":"mutation { logout }"}`
	for _, tc := range []struct {
		name, method, contentType, body string
		extra                           http.Header
		status                          int
	}{
		{"form post", "POST", "application/x-www-form-urlencoded", "query=mutation+%7B+logout+%7D", nil, 400},
		{"text/plain post", "POST", "text/plain", logout, nil, 400},
		{"text/plain with charset", "POST", "text/plain; charset=utf-8", logout, nil, 400},
		{"multipart post", "POST", "multipart/form-data; boundary=x", "--x\r\n\r\n" + logout + "\r\n--x--", nil, 400},
		{"no content type", "POST", "", logout, nil, 400},
		{"plain GET", "GET", "", "", nil, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{"Authorization": {"Bearer " + p.AccessToken}}
			if tc.contentType != "" {
				h.Set("Content-Type", tc.contentType)
			}
			path := "/graphql"
			if tc.method == "GET" {
				path += "?query=" + url.QueryEscape("{ protected }")
			}
			res := s.send(t, tc.method, path, h, tc.body)
			if res.Status != tc.status {
				t.Errorf("status %d, want %d: %s", res.Status, tc.status, res.Raw)
			}
			res.wantError(t, "BAD_REQUEST", "")
		})
	}
	s.wantProtected(t, p.AccessToken) // no logout went through

	// A GET query with Apollo's preflight header is served.
	q := "/graphql?query=" + url.QueryEscape("{ protected }")
	for _, h := range []http.Header{{"Apollo-Require-Preflight": {"true"}}, {"X-Apollo-Operation-Name": {"Q"}}, {"Content-Type": {"application/json"}}} {
		h.Set("Authorization", "Bearer "+p.AccessToken)
		if res := s.send(t, "GET", q, h, ""); string(res.Data["protected"]) != protectedAnswer {
			t.Errorf("GET with %v: %d %s", h, res.Status, res.Raw)
		}
	}
	// A mutation over GET is never executed: 405.
	res := s.send(t, "GET", "/graphql?query="+url.QueryEscape("mutation { logout }"), http.Header{
		"Authorization": {"Bearer " + p.AccessToken}, "Apollo-Require-Preflight": {"true"}}, "")
	if res.Status != http.StatusMethodNotAllowed {
		t.Errorf("mutation over GET: status %d, want 405", res.Status)
	}
	res.wantError(t, "BAD_REQUEST", "")
	s.wantProtected(t, p.AccessToken)
}

func TestCORS_OnlyListedOrigins(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), map[string]string{"CORS_ORIGINS": "https://app.example.com"})
	preflight := func(origin string) gqlResponse {
		return s.send(t, "OPTIONS", "/graphql", http.Header{
			"Origin": {origin}, "Access-Control-Request-Method": {"POST"},
			"Access-Control-Request-Headers": {"authorization,content-type"},
		}, "")
	}
	ok := preflight("https://app.example.com")
	if ok.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" || ok.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("listed origin: %v", ok.Header)
	}
	if !strings.Contains(strings.ToLower(ok.Header.Get("Access-Control-Allow-Headers")), "authorization") {
		t.Errorf("Authorization not allowed: %v", ok.Header)
	}
	evil := preflight("https://evil.example.com")
	if evil.Header.Get("Access-Control-Allow-Origin") != "" || evil.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("unlisted origin got CORS headers: %v", evil.Header)
	}
	// The actual request from an unlisted origin gets no CORS headers either,
	// so its page cannot read the answer.
	res := s.send(t, "POST", "/graphql", http.Header{"Origin": {"https://evil.example.com"}, "Content-Type": {"application/json"}},
		`{"query":"{ __typename }"}`)
	if res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("unlisted origin: %v", res.Header)
	}
	// Without CORS_ORIGINS, no origin is allowed.
	none := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	res = none.send(t, "OPTIONS", "/graphql", http.Header{"Origin": {"https://app.example.com"}, "Access-Control-Request-Method": {"POST"}}, "")
	if res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("no CORS_ORIGINS, yet: %v", res.Header)
	}
}

func TestSecurityHeaders(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	p := s.register(t, "alice", "correct horse")
	page := s.send(t, "GET", "/", nil, "")
	csp := page.Header.Get("Content-Security-Policy")
	// TestPlayground_CSPAllowsThisServerOnly checks every directive.
	for _, want := range []string{"default-src 'none'", "script-src 'self';", "frame-ancestors 'none'", "connect-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("playground CSP %q lacks %q", csp, want)
		}
	}
	login := s.login(t, "", "alice", "correct horse")
	refresh := s.refresh(t, *p.RefreshToken)
	for name, res := range map[string]gqlResponse{"page": page, "login": login, "refresh": refresh, "healthz": s.send(t, "GET", "/healthz", nil, "")} {
		if res.Header.Get("X-Content-Type-Options") != "nosniff" || res.Header.Get("Referrer-Policy") != "no-referrer" || res.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: %v", name, res.Header)
		}
	}
	for name, res := range map[string]gqlResponse{"login": login, "refresh": refresh} {
		if res.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s carries tokens but may be cached: %q", name, res.Header.Get("Cache-Control"))
		}
	}
}

// A subscription sent over HTTP would hold the request open waiting for an
// event: it is refused at once.
func TestSubscription_OverHTTPIsRefused(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	p := s.register(t, "alice", "correct horse")
	s.post(t, p.AccessToken, `subscription { noteCreated { id } }`, nil).wantError(t, "GRAPHQL_VALIDATION_FAILED", "TRANSPORT")
}
