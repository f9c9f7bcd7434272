package api_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"

	"tollgate/db/dbtest"
	"tollgate/graph"
)

// stringArgument is one String or ID argument of a root field.
type stringArgument struct {
	op    ast.Operation
	field *ast.FieldDefinition
	arg   *ast.ArgumentDefinition
}

// stringArguments lists every String and ID argument of every query and
// mutation field of the schema, so that a field added later is covered too.
func stringArguments(t *testing.T) []stringArgument {
	t.Helper()
	schema := graph.NewExecutableSchema(graph.Config{}).Schema()
	var out []stringArgument
	for op, def := range map[ast.Operation]*ast.Definition{ast.Query: schema.Query, ast.Mutation: schema.Mutation} {
		for _, f := range def.Fields {
			if strings.HasPrefix(f.Name, "__") {
				continue
			}
			for _, a := range f.Arguments {
				if n := a.Type.Name(); n == "String" || n == "ID" {
					out = append(out, stringArgument{op: op, field: f, arg: a})
				}
			}
		}
	}
	if len(out) < 15 {
		t.Fatalf("found only %d string arguments: the schema walk is broken", len(out))
	}
	return out
}

// operation calls a.field with a.arg set to value (a GraphQL literal) and
// every other required argument set to something valid.
func (a stringArgument) operation(schema *ast.Schema, value string) string {
	var args []string
	for _, other := range a.field.Arguments {
		switch {
		case other == a.arg:
			args = append(args, other.Name+": "+value)
		case !other.Type.NonNull:
		case other.Type.Name() == "Role":
			args = append(args, other.Name+": USER")
		case other.Type.Name() == "JSON":
			args = append(args, other.Name+": {}")
		default:
			args = append(args, other.Name+`: "00000000-0000-4000-8000-000000000000"`)
		}
	}
	selection := ""
	if t := schema.Types[a.field.Type.Name()]; t != nil && (t.Kind == ast.Object || t.Kind == ast.Interface) {
		selection = " { __typename }"
	}
	return fmt.Sprintf("%s { %s(%s)%s }", a.op, a.field.Name, strings.Join(args, ", "), selection)
}

// A NUL character or bytes that are not UTF-8 in any string argument once
// reached PostgreSQL, which answered with an error (INTERNAL_SERVER_ERROR).
// Every such argument is refused where it enters, BAD_USER_INPUT naming the
// argument, before any resolver runs and on both databases.
func TestAttack_HostileStringsNeverReachTheDatabase(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dbURL string) {
		s, admin := newAdmin(t, dbURL)
		schema := graph.NewExecutableSchema(graph.Config{}).Schema()
		want := func(t *testing.T, res gqlResponse, arg string) {
			t.Helper()
			e := res.wantError(t, "BAD_USER_INPUT", "INVALID_INPUT")
			if e.Extensions["field"] != arg {
				t.Errorf("field = %v, want %s", e.Extensions["field"], arg)
			}
		}
		for _, a := range stringArguments(t) {
			t.Run(a.field.Name+"."+a.arg.Name, func(t *testing.T) {
				queries := s.App.Store.Queries()
				// A NUL, as a literal and as a variable.
				want(t, s.post(t, admin.AccessToken, a.operation(schema, `"a\u0000b"`), nil), a.arg.Name)
				withVar := strings.Replace(a.operation(schema, "$v"), string(a.op)+" {", fmt.Sprintf("%s($v: %s) {", a.op, a.arg.Type.String()), 1)
				want(t, s.post(t, admin.AccessToken, withVar, map[string]any{"v": "a\x00b"}), a.arg.Name)
				// Bytes that are not UTF-8 can only arrive in a GET's query
				// text (JSON decoding replaces them): queries only, as GET
				// never runs a mutation.
				if a.op == ast.Query {
					q := url.QueryEscape(a.operation(schema, `"a`+"\xff\xfe"+`b"`))
					want(t, s.send(t, http.MethodGet, "/graphql?query="+q, http.Header{
						"Authorization": {"Bearer " + admin.AccessToken}, "Apollo-Require-Preflight": {"1"}}, ""), a.arg.Name)
				}
				if n := s.App.Store.Queries() - queries; n != 0 {
					t.Errorf("%d queries reached the database", n)
				}
			})
		}

		// An id of a form Tollgate never gives is NOT_FOUND without a query.
		for _, op := range []string{`{ note(id: "1") { id } }`, `mutation { deleteNote(id: "1'--") }`,
			`mutation { revokeSession(id: "x") }`, `mutation { setRole(userId: "42", role: USER) { id } }`,
			`{ notes(after: "x") { id } }`} {
			queries := s.App.Store.Queries()
			s.post(t, admin.AccessToken, op, nil).wantError(t, "NOT_FOUND", "")
			if n := s.App.Store.Queries() - queries; n != 0 {
				t.Errorf("%s sent %d queries", op, n)
			}
		}

		// A cursor that decodes to bytes that are not UTF-8.
		cursor := base64.RawURLEncoding.EncodeToString([]byte("2026-01-01T00:00:00Z|\xff\x00"))
		if e := s.users(t, admin.AccessToken, 5, &cursor).wantError(t, "BAD_USER_INPUT", "INVALID_INPUT"); e.Extensions["field"] != "after" {
			t.Errorf("cursor: field = %v", e.Extensions["field"])
		}
	})
}

// A User-Agent with bytes that are not UTF-8 made login and register fail on
// PostgreSQL: such a client could not sign in at all. It is stored with those
// bytes replaced.
func TestAttack_UserAgentThatIsNotUTF8(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dbURL string) {
		s := newTestServer(t, dbURL, nil)
		h := http.Header{"Content-Type": {"application/json"}, "User-Agent": {"Mozilla/5.0 \xff\xfe (X11)"}}
		for _, op := range []string{
			`{"query":"mutation { register(username: \"alice\", password: \"correct horse\") { accessToken } }"}`,
			`{"query":"mutation { login(username: \"alice\", password: \"correct horse\") { accessToken } }"}`,
		} {
			res := s.send(t, http.MethodPost, "/graphql", h, op)
			if len(res.Errors) != 0 {
				t.Fatalf("%s: %s", op, res.Raw)
			}
		}
		p := s.mustLogin(t, "alice", "correct horse")
		var agents []string
		for _, sess := range s.sessions(t, p.AccessToken) {
			if sess.UserAgent != nil {
				agents = append(agents, *sess.UserAgent)
			}
		}
		if !strings.Contains(strings.Join(agents, "|"), "Mozilla/5.0 \uFFFD\uFFFD (X11)") {
			t.Errorf("user agents %q", agents)
		}
	})
}
