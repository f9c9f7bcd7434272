package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/formatter"

	"tollgate/db/dbtest"
)

// In production an introspection query is refused by validation (HTTP 400,
// GRAPHQL_VALIDATION_FAILED) and leaves no ERROR in the log, so that nobody
// can flood the log with it; __typename stays allowed.
func TestProduction_IntrospectionIsAValidationError(t *testing.T) {
	prod := newTestServer(t, dbtest.URL(t, "sqlite"), map[string]string{"APP_ENV": "production", "JWT_SECRET": testSecret})
	for _, query := range []string{
		`{ __schema { types { name } } }`,
		`{ __type(name: "User") { fields { name } } }`,
		`query { ...F } fragment F on Query { __schema { queryType { name } } }`,
		`{ protected __type(name: "Query") { name } }`,
	} {
		for range 3 {
			res := prod.post(t, "", query, nil)
			if res.Status != http.StatusBadRequest || hasData(t, res.Raw) {
				t.Errorf("%s: status %d, want 400 without data: %s", query, res.Status, res.Raw)
			}
			res.wantError(t, "GRAPHQL_VALIDATION_FAILED", "")
		}
	}
	if strings.Contains(prod.Log.String(), `"level":"ERROR"`) {
		t.Errorf("introspection queries were logged as errors:\n%s", prod.Log.String())
	}
	if res := prod.post(t, "", `{ __typename }`, nil); res.Status != 200 || string(res.Data["__typename"]) != `"Query"` {
		t.Errorf("__typename: %d %s", res.Status, res.Raw)
	}
	if res := prod.send(t, "GET", "/schema.graphql", nil, ""); res.Status != http.StatusNotFound {
		t.Errorf("GET /schema.graphql in production: %d", res.Status)
	}
}

// No validation message in production suggests a name: not for an unknown
// field, argument, enum value or type. Development keeps the suggestions
// (which proves each query would suggest one).
func TestProduction_NoSuggestions(t *testing.T) {
	prod := newTestServer(t, dbtest.URL(t, "sqlite"), map[string]string{"APP_ENV": "production", "JWT_SECRET": testSecret})
	dev := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	for name, query := range map[string]string{
		"field":      `{ protectd }`,
		"argument":   `{ users(frist: 1) { pageInfo { hasNextPage } } }`,
		"enum value": `mutation { setRole(userId: "1", role: ADMN) { id } }`,
		"type":       `{ ...F } fragment F on Quer { __typename }`,
		"leaf":       `{ me }`,
	} {
		t.Run(name, func(t *testing.T) {
			res := prod.post(t, "", query, nil)
			if res.Status != http.StatusBadRequest {
				t.Errorf("status %d: %s", res.Status, res.Raw)
			}
			if strings.Contains(res.Raw, "Did you mean") {
				t.Errorf("production suggests a name: %s", res.Raw)
			}
			if name != "leaf" {
				if res := dev.post(t, "", query, nil); !strings.Contains(res.Raw, "Did you mean") {
					t.Errorf("development gives no suggestion: %s", res.Raw)
				}
			}
		})
	}
}

// loadFormatted parses SDL with gqlparser and prints it with its formatter,
// applied directives (which introspection cannot show) left out.
func loadFormatted(t *testing.T, name, sdl string) string {
	t.Helper()
	schema, err := gqlparser.LoadSchema(&ast.Source{Name: name, Input: sdl})
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, sdl)
	}
	for _, def := range schema.Types {
		def.Directives = nil
		for _, f := range def.Fields {
			f.Directives = dropAllBut(f.Directives, "deprecated")
			for _, a := range f.Arguments {
				a.Directives = nil
			}
		}
		for _, v := range def.EnumValues {
			v.Directives = dropAllBut(v.Directives, "deprecated")
		}
	}
	var buf bytes.Buffer
	formatter.NewFormatter(&buf).FormatSchema(schema)
	return buf.String()
}

func dropAllBut(list ast.DirectiveList, name string) ast.DirectiveList {
	var out ast.DirectiveList
	for _, d := range list {
		if d.Name == name {
			out = append(out, d)
		}
	}
	return out
}

// GET /schema.graphql serves the SDL, identical in meaning to schema.graphqls.
func TestSchemaSDL_IsTheSchema(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	res := s.send(t, "GET", "/schema.graphql", nil, "")
	if res.Status != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /schema.graphql: %d %s", res.Status, res.Header.Get("Content-Type"))
	}
	file, err := os.ReadFile("../schema.graphqls")
	if err != nil {
		t.Fatal(err)
	}
	// Compared in full, applied directives included.
	parse := func(name, sdl string) string {
		schema, err := gqlparser.LoadSchema(&ast.Source{Name: name, Input: sdl})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var buf bytes.Buffer
		formatter.NewFormatter(&buf).FormatSchema(schema)
		return buf.String()
	}
	if got, want := parse("served", res.Raw), parse("schema.graphqls", string(file)); got != want {
		t.Errorf("served SDL differs from schema.graphqls:\n%s", diffLines(got, want))
	}
}

// The schema that introspection describes is schema.graphqls: built back
// into SDL from the introspection result, it prints as the file does.
func TestIntrospection_DescribesSchemaFile(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	res := s.post(t, "", fullIntrospectionQuery, nil)
	var schema introSchema
	res.field(t, "__schema", &schema)
	file, err := os.ReadFile("../schema.graphqls")
	if err != nil {
		t.Fatal(err)
	}
	got := loadFormatted(t, "introspection", schema.sdl())
	want := loadFormatted(t, "schema.graphqls", string(file))
	if strings.Count(want, "\n") < 50 || !strings.Contains(want, "directive @auth") {
		t.Fatalf("the schema printed too little to compare:\n%s", want)
	}
	if got != want {
		t.Errorf("introspection differs from schema.graphqls:\n%s", diffLines(got, want))
	}
}

func diffLines(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	var b strings.Builder
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			fmt.Fprintf(&b, "line %d:\n  got:  %s\n  want: %s\n", i+1, gl, wl)
			if b.Len() > 2000 {
				break
			}
		}
	}
	return b.String()
}

// The introspection result, as far as SDL can express it.
type introSchema struct {
	QueryType        *introName   `json:"queryType"`
	MutationType     *introName   `json:"mutationType"`
	SubscriptionType *introName   `json:"subscriptionType"`
	Types            []introType  `json:"types"`
	Directives       []introDirec `json:"directives"`
}

type introName struct {
	Name string `json:"name"`
}

type introType struct {
	Kind          string       `json:"kind"`
	Name          string       `json:"name"`
	Description   *string      `json:"description"`
	Fields        []introField `json:"fields"`
	InputFields   []introInput `json:"inputFields"`
	Interfaces    []introRef   `json:"interfaces"`
	EnumValues    []introEnum  `json:"enumValues"`
	PossibleTypes []introRef   `json:"possibleTypes"`
}

type introField struct {
	Name              string       `json:"name"`
	Description       *string      `json:"description"`
	Args              []introInput `json:"args"`
	Type              introRef     `json:"type"`
	IsDeprecated      bool         `json:"isDeprecated"`
	DeprecationReason *string      `json:"deprecationReason"`
}

type introInput struct {
	Name         string   `json:"name"`
	Description  *string  `json:"description"`
	Type         introRef `json:"type"`
	DefaultValue *string  `json:"defaultValue"`
}

type introEnum struct {
	Name              string  `json:"name"`
	Description       *string `json:"description"`
	IsDeprecated      bool    `json:"isDeprecated"`
	DeprecationReason *string `json:"deprecationReason"`
}

type introRef struct {
	Kind   string    `json:"kind"`
	Name   *string   `json:"name"`
	OfType *introRef `json:"ofType"`
}

type introDirec struct {
	Name         string       `json:"name"`
	Description  *string      `json:"description"`
	Locations    []string     `json:"locations"`
	Args         []introInput `json:"args"`
	IsRepeatable bool         `json:"isRepeatable"`
}

func (r introRef) String() string {
	switch r.Kind {
	case "NON_NULL":
		return r.OfType.String() + "!"
	case "LIST":
		return "[" + r.OfType.String() + "]"
	}
	return *r.Name
}

func description(b *strings.Builder, d *string, indent string) {
	if d != nil && *d != "" {
		q, _ := json.Marshal(*d) // a JSON string is a valid GraphQL string
		fmt.Fprintf(b, "%s%s\n", indent, q)
	}
}

func inputs(args []introInput) string {
	var parts []string
	for _, a := range args {
		var b strings.Builder
		description(&b, a.Description, "")
		fmt.Fprintf(&b, "%s: %s", a.Name, a.Type)
		if a.DefaultValue != nil {
			fmt.Fprintf(&b, " = %s", *a.DefaultValue)
		}
		parts = append(parts, b.String())
	}
	if len(parts) == 0 {
		return ""
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

func deprecated(is bool, reason *string) string {
	if !is {
		return ""
	}
	if reason == nil {
		return " @deprecated"
	}
	q, _ := json.Marshal(*reason)
	return fmt.Sprintf(" @deprecated(reason: %s)", q)
}

var builtinScalars = map[string]bool{"String": true, "Int": true, "Float": true, "Boolean": true, "ID": true}

var builtinDirectives = map[string]bool{"skip": true, "include": true, "deprecated": true, "specifiedBy": true, "oneOf": true, "defer": true}

// sdl writes the schema back as SDL (the reverse of introspection).
func (s introSchema) sdl() string {
	var b strings.Builder
	roots := map[string]string{"query": "Query", "mutation": "Mutation", "subscription": "Subscription"}
	for op, root := range map[string]*introName{"query": s.QueryType, "mutation": s.MutationType, "subscription": s.SubscriptionType} {
		if root != nil && root.Name != roots[op] {
			panic("a root type with another name: extend the test")
		}
	}
	for _, d := range s.Directives {
		if builtinDirectives[d.Name] {
			continue
		}
		description(&b, d.Description, "")
		fmt.Fprintf(&b, "directive @%s%s", d.Name, inputs(d.Args))
		if d.IsRepeatable {
			b.WriteString(" repeatable")
		}
		fmt.Fprintf(&b, " on %s\n", strings.Join(d.Locations, " | "))
	}
	for _, t := range s.Types {
		if strings.HasPrefix(t.Name, "__") || builtinScalars[t.Name] {
			continue
		}
		description(&b, t.Description, "")
		switch t.Kind {
		case "SCALAR":
			fmt.Fprintf(&b, "scalar %s\n", t.Name)
		case "OBJECT", "INTERFACE":
			kw := map[string]string{"OBJECT": "type", "INTERFACE": "interface"}[t.Kind]
			fmt.Fprintf(&b, "%s %s", kw, t.Name)
			if len(t.Interfaces) > 0 {
				var names []string
				for _, i := range t.Interfaces {
					names = append(names, i.String())
				}
				fmt.Fprintf(&b, " implements %s", strings.Join(names, " & "))
			}
			b.WriteString(" {\n")
			for _, f := range t.Fields {
				description(&b, f.Description, "  ")
				fmt.Fprintf(&b, "  %s%s: %s%s\n", f.Name, inputs(f.Args), f.Type, deprecated(f.IsDeprecated, f.DeprecationReason))
			}
			b.WriteString("}\n")
		case "UNION":
			var names []string
			for _, p := range t.PossibleTypes {
				names = append(names, p.String())
			}
			fmt.Fprintf(&b, "union %s = %s\n", t.Name, strings.Join(names, " | "))
		case "ENUM":
			fmt.Fprintf(&b, "enum %s {\n", t.Name)
			for _, v := range t.EnumValues {
				description(&b, v.Description, "  ")
				fmt.Fprintf(&b, "  %s%s\n", v.Name, deprecated(v.IsDeprecated, v.DeprecationReason))
			}
			b.WriteString("}\n")
		case "INPUT_OBJECT":
			fmt.Fprintf(&b, "input %s {\n", t.Name)
			for _, f := range t.InputFields {
				description(&b, f.Description, "  ")
				fmt.Fprintf(&b, "  %s: %s", f.Name, f.Type)
				if f.DefaultValue != nil {
					fmt.Fprintf(&b, " = %s", *f.DefaultValue)
				}
				b.WriteString("\n")
			}
			b.WriteString("}\n")
		}
	}
	return b.String()
}

// fullIntrospectionQuery asks for everything SDL can say, deprecated members included.
const fullIntrospectionQuery = `query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations isRepeatable args(includeDeprecated: true) { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) { name description args(includeDeprecated: true) { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields(includeDeprecated: true) { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } }
}`
