package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"tollgate/db/dbtest"
)

// hasData reports whether a response body has a "data" entry at all.
func hasData(t *testing.T, raw string) bool {
	t.Helper()
	var body map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &body); err != nil {
		t.Fatalf("body %q: %v", raw, err)
	}
	_, ok := body["data"]
	return ok
}

// GraphQL over HTTP: a request that fails before execution (parse,
// validation, variable coercion, a missing query) is HTTP 400 without a
// "data" entry, under either response media type; one that executed is 200
// with its data, field errors and all.
func TestRequest_StatusFollowsGraphQLOverHTTP(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	const gqlResponse = "application/graphql-response+json"
	for _, accept := range []string{"", "application/json", "*/*", gqlResponse, gqlResponse + ", application/json;q=0.9"} {
		wantType := "application/json"
		if strings.HasPrefix(accept, gqlResponse) {
			wantType = gqlResponse
		}
		h := http.Header{"Content-Type": {"application/json"}}
		if accept != "" {
			h.Set("Accept", accept)
		}
		for _, tc := range []struct {
			name, body string
			code       string
		}{
			{"parse failure", `{"query":"{"}`, "GRAPHQL_PARSE_FAILED"},
			{"validation failure", `{"query":"{ unknownField }"}`, "GRAPHQL_VALIDATION_FAILED"},
			{"variable coercion failure", `{"query":"query CoerceFailure($id: ID!){ __typename }","variables":{"id":null}}`, "GRAPHQL_VALIDATION_FAILED"},
			{"missing query", `{"qeury":"{ __typename }"}`, "GRAPHQL_VALIDATION_FAILED"},
			{"unknown operation name", `{"query":"query A { __typename }","operationName":"B"}`, "GRAPHQL_VALIDATION_FAILED"},
			{"invalid JSON", `{ "not a JSON`, "BAD_REQUEST"},
			{"query of the wrong type", `{"query":{"obj":"ect"}}`, "BAD_REQUEST"},
			{"variables of the wrong type", `{"query":"{ __typename }","variables":"string"}`, "BAD_REQUEST"},
			{"no body", ``, "BAD_REQUEST"},
		} {
			t.Run(tc.name+" accept "+accept, func(t *testing.T) {
				res := s.send(t, "POST", "/graphql", h, tc.body)
				if res.Status != http.StatusBadRequest {
					t.Errorf("status %d, want 400: %s", res.Status, res.Raw)
				}
				if ct := res.Header.Get("Content-Type"); ct != wantType {
					t.Errorf("Content-Type %q, want %q", ct, wantType)
				}
				if hasData(t, res.Raw) {
					t.Errorf("a request error has a data entry: %s", res.Raw)
				}
				res.wantError(t, tc.code, "")
			})
		}
		t.Run("executed with a field error accept "+accept, func(t *testing.T) {
			res := s.send(t, "POST", "/graphql", h, `{"query":"{ protected }"}`)
			if res.Status != http.StatusOK || !hasData(t, res.Raw) {
				t.Errorf("status %d, want 200 with data: %s", res.Status, res.Raw)
			}
			if ct := res.Header.Get("Content-Type"); ct != wantType {
				t.Errorf("Content-Type %q, want %q", ct, wantType)
			}
			res.wantError(t, "UNAUTHENTICATED", "TOKEN_MISSING")
		})
	}
	// Over GET alike.
	h := http.Header{"Apollo-Require-Preflight": {"true"}}
	for query, code := range map[string]string{
		"query=%7B":                            "GRAPHQL_PARSE_FAILED",
		"query=%7B+nope+%7D":                   "GRAPHQL_VALIDATION_FAILED",
		"query=%7B__typename%7D&variables=%5B": "BAD_REQUEST",
	} {
		res := s.send(t, "GET", "/graphql?"+query, h, "")
		if res.Status != http.StatusBadRequest || hasData(t, res.Raw) {
			t.Errorf("GET ?%s: status %d, want 400 without data: %s", query, res.Status, res.Raw)
		}
		res.wantError(t, code, "")
	}
}
