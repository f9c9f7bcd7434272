// Package docs holds Tollgate's reference (reference.md) and what keeps it
// true: the section between the schema markers is written from
// schema.graphqls by `go generate ./docs/` (RenderSchema, Splice), and the
// tests of this package fail when a configuration variable, an error code or
// reason, a WebSocket close code or a route that the code has is missing
// from the page.
//
// The schema section is generated rather than written because the schema
// changes with every feature: a hand-kept list of operations and their @auth
// requirements would drift the first time someone forgot it, and .ci/run
// already refuses a commit whose `go generate ./...` leaves a diff.
package docs

//go:generate go run ./schemagen -schema ../schema.graphqls -page reference.md

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

// The markers that enclose the generated section of reference.md.
const (
	BeginMarker = "<!-- schema:begin -->"
	EndMarker   = "<!-- schema:end -->"
)

// RenderSchema returns the Markdown of the schema section for the SDL in
// src (named name in errors): the @auth directive, every query, mutation
// and subscription with its arguments, return type and @auth requirements,
// and every type. Definitions keep the order of the file.
func RenderSchema(name string, src []byte) (string, error) {
	source := &ast.Source{Name: name, Input: string(src)}
	// LoadSchema validates (and resolves the directive's defaults);
	// ParseSchema keeps the definitions in the order they were written.
	schema, err := gqlparser.LoadSchema(source)
	if err != nil {
		return "", fmt.Errorf("load schema: %w", err)
	}
	doc, err := parser.ParseSchema(source)
	if err != nil {
		return "", fmt.Errorf("parse schema: %w", err)
	}
	r := renderer{schema: schema, auth: schema.Directives["auth"]}
	if r.auth == nil {
		return "", errors.New("the schema declares no @auth directive")
	}
	r.directive()
	for _, root := range []struct {
		def   *ast.Definition
		title string
	}{
		{schema.Query, "Queries"},
		{schema.Mutation, "Mutations"},
		{schema.Subscription, "Subscriptions"},
	} {
		if root.def != nil {
			r.operations(root.title, root.def)
		}
	}
	r.types(doc)
	return r.buf.String(), nil
}

// Splice returns page with the text between BeginMarker and EndMarker
// replaced by section.
func Splice(page, section string) (string, error) {
	begin := strings.Index(page, BeginMarker)
	end := strings.Index(page, EndMarker)
	if begin < 0 || end < 0 || end < begin || strings.Count(page, BeginMarker) != 1 || strings.Count(page, EndMarker) != 1 {
		return "", fmt.Errorf("the page needs exactly one %s followed by exactly one %s", BeginMarker, EndMarker)
	}
	head := page[:begin+len(BeginMarker)]
	return head + "\n" + section + page[end:], nil
}

type renderer struct {
	schema *ast.Schema
	auth   *ast.DirectiveDefinition
	buf    bytes.Buffer
}

func (r *renderer) printf(format string, args ...any) { fmt.Fprintf(&r.buf, format, args...) }

func (r *renderer) directive() {
	r.printf("<!-- Written by `go generate ./docs/` from schema.graphqls: change the schema, not this section. -->\n\n")
	r.printf("### The `@auth` directive\n\n")
	r.printf("%s\n\n", text(r.auth.Description))
	var locs []string
	for _, l := range r.auth.Locations {
		locs = append(locs, string(l))
	}
	r.printf("`directive @auth%s on %s`\n\n", argumentList(r.auth.Arguments), strings.Join(locs, " | "))
	r.printf("| argument | type | default |\n|---|---|---|\n")
	for _, a := range r.auth.Arguments {
		def := "none"
		if a.DefaultValue != nil {
			def = "`" + a.DefaultValue.String() + "`"
		}
		r.printf("| `%s` | `%s` | %s |\n", a.Name, a.Type.String(), def)
	}
	r.printf("\nA field without `@auth` (on itself or on its type) is public: anyone may call it, with or without a token.\n\n")
}

func (r *renderer) operations(title string, root *ast.Definition) {
	r.printf("### %s\n\n", title)
	r.printf("| operation | arguments | returns | role | fresh | aal | what it does |\n|---|---|---|---|---|---|---|\n")
	for _, f := range root.Fields {
		if strings.HasPrefix(f.Name, "__") {
			continue
		}
		var args []string
		for _, a := range f.Arguments {
			s := "`" + a.Name + ": " + a.Type.String()
			if a.DefaultValue != nil {
				s += " = " + a.DefaultValue.String()
			}
			s += "`"
			if a.Description != "" {
				s += " " + cell(a.Description)
			}
			args = append(args, s)
		}
		role, fresh, aal := r.requirements(f, root)
		r.printf("| `%s` | %s | `%s` | %s | %s | %s | %s |\n", f.Name, orDash(strings.Join(args, "<br>")),
			f.Type.String(), role, fresh, aal, orDash(cell(f.Description)))
	}
	r.printf("\n")
}

// requirements reads the @auth of f, or of its parent type, with the
// directive's defaults for what it leaves out.
func (r *renderer) requirements(f *ast.FieldDefinition, parent *ast.Definition) (role, fresh, aal string) {
	d := f.Directives.ForName("auth")
	if d == nil {
		d = parent.Directives.ForName("auth")
	}
	if d == nil {
		return "public", "—", "—"
	}
	value := func(name string) string {
		if a := d.Arguments.ForName(name); a != nil && a.Value != nil {
			return a.Value.String()
		}
		if a := r.auth.Arguments.ForName(name); a != nil && a.DefaultValue != nil {
			return a.DefaultValue.String()
		}
		return ""
	}
	role = "`" + value("requires") + "`"
	fresh = "no"
	if value("fresh") == "true" {
		fresh = "**yes**"
	}
	switch v := value("aal"); v {
	case "":
		aal = "AAL2 if the user has a verified factor, else AAL1"
	case "AAL1":
		aal = "`AAL1`: a password alone suffices"
	default:
		aal = "`" + v + "`, always"
	}
	return role, fresh, aal
}

func (r *renderer) types(doc *ast.SchemaDocument) {
	roots := map[string]bool{}
	for _, d := range []*ast.Definition{r.schema.Query, r.schema.Mutation, r.schema.Subscription} {
		if d != nil {
			roots[d.Name] = true
		}
	}
	r.printf("### Types\n\n")
	for _, def := range doc.Definitions {
		if roots[def.Name] {
			continue
		}
		switch def.Kind {
		case ast.Object, ast.InputObject, ast.Interface:
			r.printf("**`%s`**", def.Name)
			if d := def.Directives.ForName("auth"); d != nil {
				// Every field of the type is guarded, wherever it is reached.
				r.printf(" (every field guarded by `%s`)", directiveText(d))
			}
			if def.Description != "" {
				r.printf(": %s", text(def.Description))
			}
			r.printf("\n\n| field | type | meaning |\n|---|---|---|\n")
			for _, f := range def.Fields {
				r.printf("| `%s` | `%s` | %s |\n", f.Name, f.Type.String(), orDash(cell(f.Description)))
			}
			r.printf("\n")
		case ast.Enum:
			r.printf("**`%s`** (enum)", def.Name)
			if def.Description != "" {
				r.printf(": %s", text(def.Description))
			}
			r.printf("\n\n| value | meaning |\n|---|---|\n")
			for _, v := range def.EnumValues {
				r.printf("| `%s` | %s |\n", v.Name, orDash(cell(v.Description)))
			}
			r.printf("\n")
		case ast.Scalar:
			r.printf("**`%s`** (scalar)", def.Name)
			if def.Description != "" {
				r.printf(": %s", text(def.Description))
			}
			r.printf("\n\n")
		case ast.Union:
			r.printf("**`%s`** (union of %s)", def.Name, strings.Join(def.Types, ", "))
			if def.Description != "" {
				r.printf(": %s", text(def.Description))
			}
			r.printf("\n\n")
		}
	}
}

// directiveText prints a directive as written, @auth(requires: ADMIN).
func directiveText(d *ast.Directive) string {
	if len(d.Arguments) == 0 {
		return "@" + d.Name
	}
	var args []string
	for _, a := range d.Arguments {
		args = append(args, a.Name+": "+a.Value.String())
	}
	return "@" + d.Name + "(" + strings.Join(args, ", ") + ")"
}

func argumentList(args ast.ArgumentDefinitionList) string {
	if len(args) == 0 {
		return ""
	}
	var parts []string
	for _, a := range args {
		s := a.Name + ": " + a.Type.String()
		if a.DefaultValue != nil {
			s += " = " + a.DefaultValue.String()
		}
		parts = append(parts, s)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// oneParagraph joins the lines of a description with spaces.
func oneParagraph(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// cell makes a description fit in one table cell.
func cell(s string) string {
	return strings.ReplaceAll(text(s), "|", `\|`)
}

// text is a description as one paragraph of Markdown: outside code spans,
// < and > are escaped, so that <issuer> shows instead of vanishing as a tag.
func text(s string) string {
	parts := strings.Split(oneParagraph(s), "`")
	for i := 0; i < len(parts); i += 2 {
		parts[i] = strings.NewReplacer("<", "&lt;", ">", "&gt;").Replace(parts[i])
	}
	return strings.Join(parts, "`")
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}
