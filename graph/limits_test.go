package graph

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

var testLimits = Limits{MaxDepth: 12, MaxComplexity: 1000, MaxFields: 500, MaxAliases: 50, MaxQueryBytes: 100_000}

// doubling returns fragments that each spread the next one twice.
func doubling(depth int) string {
	var b strings.Builder
	b.WriteString("{ ...F0 }\n")
	for i := range depth {
		fmt.Fprintf(&b, "fragment F%d on Query { ...F%d ... on Query { ...F%d } }\n", i, i+1, i+1)
	}
	fmt.Fprintf(&b, "fragment F%d on Query { __typename }\n", depth)
	return b.String()
}

func mustParse(t testing.TB, query string) *ast.QueryDocument {
	t.Helper()
	doc, err := parser.ParseQuery(&ast.Source{Input: query})
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// Each spread counts as often as it is spread, and each fragment is walked
// once per mode, however often it is spread.
func TestMeasure_SpreadsCountEachTimeButAreWalkedOnce(t *testing.T) {
	unlimited := Limits{MaxDepth: saturation, MaxFields: saturation, MaxAliases: saturation}
	for _, depth := range []int{1, 5, 20} {
		c, steps := measureSteps(mustParse(t, doubling(depth)), unlimited)
		if want := 1 << depth; c.fields != want {
			t.Errorf("depth %d: %d fields, want %d", depth, c.fields, want)
		}
		// Three selections per fragment, one in the operation.
		if max := 3*(depth+1) + 1; steps > max {
			t.Errorf("depth %d: %d steps, want at most %d", depth, steps, max)
		}
	}
	c, _ := measureSteps(mustParse(t, doubling(80)), unlimited)
	if c.fields != saturation {
		t.Errorf("2^80 fields measured as %d, want the saturation %d", c.fields, saturation)
	}
}

// Depth counts through fragments and inline fragments, but not below
// __schema and __type; aliases count only where they rename.
func TestMeasure_DepthAndAliases(t *testing.T) {
	for _, tc := range []struct {
		query                  string
		fields, aliases, depth int
	}{
		{`{ me { id } }`, 2, 0, 2},
		{`{ a: me { id: id b: username } }`, 3, 2, 2},
		{`{ ...F } fragment F on Query { users { edges { node { id } } } }`, 4, 0, 4},
		{`{ __schema { types { fields { type { ofType { name } } } } } }`, 6, 0, 1},
		{`{ ... on Query { me { ... on User { id } } } }`, 2, 0, 2},
	} {
		c := measureDocument(mustParse(t, tc.query), Limits{MaxDepth: 100, MaxFields: 100, MaxAliases: 100})
		if c != (cost{tc.fields, tc.aliases, tc.depth}) {
			t.Errorf("%s: got %+v, want fields %d aliases %d depth %d", tc.query, c, tc.fields, tc.aliases, tc.depth)
		}
	}
}

// FuzzMeasure checks that measuring any document that parses takes a number
// of steps linear in its text, whatever its fragments do.
func FuzzMeasure(f *testing.F) {
	for _, seed := range []string{
		`{ me { id } }`,
		doubling(3),
		doubling(40),
		`{ ...F } fragment F on Query { ...F }`,
		`{ ...A } fragment A on Query { ...B ...B } fragment B on Query { ...A ... on Query { ...A } }`,
		`{ __schema { ...T } } fragment T on __Schema { types { ...T } }`,
		`query A { ...X } query B { ...X ...X } fragment X on Query { a: __typename b: __typename }`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, query string) {
		doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: query}, parserTokenLimit)
		if err != nil {
			return
		}
		_, steps := measureSteps(doc, testLimits)
		// Every selection takes at least one byte of text and is walked at
		// most twice (inside and outside introspection).
		if steps > 2*len(query)+2 {
			t.Fatalf("%d steps for %d bytes: %q", steps, len(query), query)
		}
	})
}
