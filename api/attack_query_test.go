package api_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"tollgate/db/dbtest"
)

// allocated returns the bytes allocated (by client and server, both in this
// process) while f runs.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// liveHeap returns the heap still in use after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// postJSON sends a raw GraphQL request body without a token.
func (s *testServer) postJSON(t *testing.T, body map[string]any) gqlResponse {
	t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return s.send(t, http.MethodPost, "/graphql", http.Header{"Content-Type": {"application/json"}}, string(raw))
}

// The overlapping-fields rule of validation compares every pair of fields of
// one name: 1,600 note(id: …) selections with distinct arguments once made it
// report millions of conflicts (a 311 MB answer, 2 GB of memory), and 99 KB
// of __typename cost seconds of CPU. Each attack must now be refused before
// validation, or have its errors capped, at a bounded cost.
func TestAttack_ValidationBlowUp(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	notes := func(n int) string {
		var b strings.Builder
		b.WriteString("{ ")
		for i := range n {
			fmt.Fprintf(&b, `note(id: "%d") { id } `, i)
		}
		b.WriteString("}")
		return b.String()
	}
	for _, tc := range []struct {
		name, query, code, reason string
		// maxErrors bounds what the answer lists.
		maxErrors int
	}{
		// The reported attack: past the parser's token limit.
		{"1600 conflicting fields", notes(1600), "GRAPHQL_PARSE_FAILED", "", 1},
		// Past the field limit: refused before validation runs.
		{"450 conflicting fields", notes(450), "GRAPHQL_VALIDATION_FAILED", "FIELDS", 1},
		// Past the parser's token limit: refused while parsing.
		{"99 KB of __typename", "{ " + strings.Repeat("__typename ", 9000) + "}", "GRAPHQL_PARSE_FAILED", "", 1},
		// Within the limits, but every pair conflicts: the errors are capped.
		{"250 conflicting fields", notes(250), "GRAPHQL_VALIDATION_FAILED", "", 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var res gqlResponse
			bytes := allocated(func() { res = s.postJSON(t, map[string]any{"query": tc.query}) })
			if res.Status != http.StatusBadRequest && res.Status != http.StatusUnprocessableEntity {
				t.Errorf("status %d, want 400", res.Status)
			}
			if len(res.Errors) == 0 || len(res.Errors) > tc.maxErrors {
				t.Fatalf("%d errors, want 1 to %d: %.500s", len(res.Errors), tc.maxErrors, res.Raw)
			}
			e := res.Errors[0]
			if e.Extensions["code"] != tc.code || (tc.reason != "" && e.Extensions["reason"] != tc.reason) {
				t.Errorf("got %v/%v, want %s/%s", e.Extensions["code"], e.Extensions["reason"], tc.code, tc.reason)
			}
			if len(res.Raw) > 16<<10 {
				t.Errorf("the answer has %d bytes", len(res.Raw))
			}
			// Parsing the document itself takes a few MB; the attack used to take GBs.
			if bytes > 24<<20 {
				t.Errorf("the request allocated %d MB", bytes>>20)
			}
			t.Logf("%d query bytes: %d KB allocated, %d answer bytes", len(tc.query), bytes>>10, len(res.Raw))
		})
	}
}

// fragmentBomb returns a document of about 60 bytes per level whose every
// fragment spreads the next one twice: 2^depth fields once expanded.
func fragmentBomb(depth int) string {
	var b strings.Builder
	b.WriteString("{ ...F0 }\n")
	for i := range depth {
		fmt.Fprintf(&b, "fragment F%d on Query { ...F%d ... on Query { ...F%d } }\n", i, i+1, i+1)
	}
	fmt.Fprintf(&b, "fragment F%d on Query { __typename }\n", depth)
	return b.String()
}

// A fragment that spreads the next one twice, thirty times over, once cost
// 2^30 steps of our limits walker. Each fragment is now measured once, and
// the spreads still count as often as they are spread: the document is
// refused for its 2^30 fields, at the cost of reading its 2 KB.
func TestAttack_FragmentBomb(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	for _, depth := range []int{10, 30, 62} {
		t.Run(fmt.Sprint(depth), func(t *testing.T) {
			bomb := fragmentBomb(depth)
			var res gqlResponse
			bytes := allocated(func() { res = s.postJSON(t, map[string]any{"query": bomb}) })
			res.wantError(t, "GRAPHQL_VALIDATION_FAILED", "FIELDS")
			if bytes > 8<<20 {
				t.Errorf("a %d-byte bomb allocated %d MB", len(bomb), bytes>>20)
			}
		})
	}
	// A fragment spread twice counts twice: 2^8 = 256 fields pass the limit
	// of 500, 2^9 = 512 do not.
	if res := s.postJSON(t, map[string]any{"query": fragmentBomb(8)}); len(res.Errors) != 0 {
		t.Errorf("256 fields refused: %.300s", res.Raw)
	}
	s.postJSON(t, map[string]any{"query": fragmentBomb(9)}).wantError(t, "GRAPHQL_VALIDATION_FAILED", "FIELDS")
}

// A persisted query that the limits refuse must not be remembered: 300
// refused queries of 1 MB once kept 420 MB alive in the cache.
func TestAttack_RefusedPersistedQueriesAreNotRemembered(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	withHash := func(query string) map[string]any {
		sum := sha256.Sum256([]byte(query))
		return map[string]any{"query": query, "extensions": map[string]any{
			"persistedQuery": map[string]any{"version": 1, "sha256Hash": hex.EncodeToString(sum[:])}}}
	}
	hashOnly := func(query string) map[string]any {
		body := withHash(query)
		delete(body, "query")
		return body
	}
	notFound := func(t *testing.T, res gqlResponse) {
		t.Helper()
		if len(res.Errors) != 1 || res.Errors[0].Message != "PersistedQueryNotFound" {
			t.Fatalf("the hash was remembered: %.300s", res.Raw)
		}
	}

	// Refused for its fields, its length, its cost: never remembered.
	tooWide := "{ me { " + strings.Repeat("id ", 600) + "} }"
	s.postJSON(t, withHash(tooWide)).wantError(t, "GRAPHQL_VALIDATION_FAILED", "FIELDS")
	notFound(t, s.postJSON(t, hashOnly(tooWide)))
	tooCostly := `{ a: users(first: 100) { edges { node { id username role createdAt } } } b: users(first: 100) { edges { node { id username role createdAt } } } }`
	s.postJSON(t, withHash(tooCostly)).wantError(t, "GRAPHQL_VALIDATION_FAILED", "COMPLEXITY")
	notFound(t, s.postJSON(t, hashOnly(tooCostly)))

	// Many refused long queries leave the heap as it was.
	base := liveHeap()
	for i := range 300 {
		q := fmt.Sprintf("{ me { id } } # %d %s", i, strings.Repeat("x", 99_000))
		body := withHash(q)
		body["query"] = q + strings.Repeat(" ", 2_000) // over MaxQueryBytes
		sum := sha256.Sum256([]byte(body["query"].(string)))
		body["extensions"].(map[string]any)["persistedQuery"].(map[string]any)["sha256Hash"] = hex.EncodeToString(sum[:])
		s.postJSON(t, body).wantError(t, "GRAPHQL_VALIDATION_FAILED", "QUERY_TOO_LONG")
	}
	if grown := int64(liveHeap()) - int64(base); grown > 16<<20 {
		t.Errorf("300 refused queries left %d MB on the heap", grown>>20)
	}

	// An accepted query is remembered; one over 16 KiB is not (the cache's
	// bound is its entries times that size).
	ok := `{ __typename }`
	if res := s.postJSON(t, withHash(ok)); len(res.Errors) != 0 {
		t.Fatalf("accepted query: %s", res.Raw)
	}
	if res := s.postJSON(t, hashOnly(ok)); string(res.Data["__typename"]) != `"Query"` {
		t.Fatalf("an accepted query was not remembered: %s", res.Raw)
	}
	long := `{ __typename } # ` + strings.Repeat("x", 17<<10)
	if res := s.postJSON(t, withHash(long)); len(res.Errors) != 0 {
		t.Fatalf("long accepted query: %.300s", res.Raw)
	}
	notFound(t, s.postJSON(t, hashOnly(long)))
}
