package docs

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2"
	gqlast "github.com/vektah/gqlparser/v2/ast"

	"tollgate/config"
)

// The page, and the sections of it that the tests read. A failure names
// the section (its heading) and the column a missing name belongs in.
const (
	pagePath       = "reference.md"
	configHeading  = "## Configuration"
	errorsHeading  = "### Codes and reasons"
	closeHeading   = "### Close codes"
	routesHeading  = "## Endpoints"
	rulesHeading   = "## Rules of each operation"
	repositoryRoot = ".."
)

func readPage(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(pagePath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// section returns the text under heading, up to the next heading of the same
// or a higher level.
func section(t *testing.T, page, heading string) string {
	t.Helper()
	lines := strings.Split(page, "\n")
	level := headingLevel(heading)
	for i, line := range lines {
		if line != heading {
			continue
		}
		var out []string
		for _, l := range lines[i+1:] {
			if n := headingLevel(l); n > 0 && n <= level {
				break
			}
			out = append(out, l)
		}
		return strings.Join(out, "\n")
	}
	t.Fatalf("docs/reference.md has no heading %q", heading)
	return ""
}

// headingLevel is the level of a Markdown heading line (## is 2), or 0.
func headingLevel(line string) int {
	n := len(line) - len(strings.TrimLeft(line, "#"))
	if n > 0 && n < len(line) && line[n] == ' ' {
		return n
	}
	return 0
}

var codeSpan = regexp.MustCompile("`([^`]+)`")

// column returns the code spans (`NAME`) in column col of every table row
// of text: the names that row documents.
func column(text string, col int) map[string]bool {
	names := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "|") || strings.HasPrefix(line, "|---") {
			continue
		}
		cells := splitRow(line)
		if col >= len(cells) {
			continue
		}
		for _, m := range codeSpan.FindAllStringSubmatch(cells[col], -1) {
			names[m[1]] = true
		}
	}
	return names
}

// splitRow splits a Markdown table row on the pipes that are not escaped
// or inside a code span.
func splitRow(line string) []string {
	var cells []string
	var cur strings.Builder
	inCode := false
	line = strings.TrimPrefix(strings.TrimSpace(line), "|")
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case c == '\\' && i+1 < len(line):
			cur.WriteByte(c)
			cur.WriteByte(line[i+1])
			i++
		case c == '`':
			inCode = !inCode
			cur.WriteByte(c)
		case c == '|' && !inCode:
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		cells = append(cells, s)
	}
	return cells
}

// sourceFile is a parsed Go file of the server (tests, generated code and
// the tools under bench/, e2e/ and docs/ excluded).
type sourceFile struct {
	path string // relative to the repository root
	file *ast.File
}

func serverSources(t *testing.T) []sourceFile {
	t.Helper()
	skip := map[string]bool{"e2e": true, "bench": true, "docs": true, "testdata": true, "node_modules": true, ".git": true, "dbtest": true}
	fset := token.NewFileSet()
	var files []sourceFile
	err := filepath.WalkDir(repositoryRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != repositoryRoot && skip[d.Name()] {
				return filepath.SkipDir
			}
			return nil
		}
		name := d.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") || name == "generated.go" {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repositoryRoot, path)
		files = append(files, sourceFile{path: filepath.ToSlash(rel), file: f})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no Go source found under the repository root")
	}
	return files
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

var envName = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

// found maps a name to where it was found, for the failure message.
type found map[string]string

func (f found) add(name, where string) {
	if _, ok := f[name]; !ok {
		f[name] = where
	}
}

func sorted[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// configVariables returns every environment variable the server reads:
// those config.Load asks its getenv for (under the environments that take
// its branches), those named as the first argument of a call in package
// config (a variable read only on a path these environments miss), and
// those the server's main reads itself (GOMAXPROCS, GOGC).
func configVariables(t *testing.T, files []sourceFile) found {
	t.Helper()
	vars := found{}
	for _, env := range []map[string]string{
		{},
		{"JWT_ALG": "EdDSA"},
		{"APP_ENV": "production"},
		{"APP_ENV": "production", "JWT_ALG": "EdDSA"},
	} {
		config.Load(func(name string) string {
			vars.add(name, "config.Load")
			return env[name]
		})
	}
	for _, sf := range files {
		inConfig := strings.HasPrefix(sf.path, "config/")
		if !inConfig && sf.path != "server.go" {
			continue
		}
		ast.Inspect(sf.file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			name, ok := stringLit(call.Args[0])
			if !ok || !envName.MatchString(name) {
				return true
			}
			fn, _ := call.Fun.(*ast.Ident)
			if inConfig || (fn != nil && fn.Name == "getenv") {
				vars.add(name, sf.path)
			}
			return true
		})
	}
	return vars
}

// TestReference_EveryConfigurationVariable fails when the server reads an
// environment variable that the configuration table does not document, or
// the table documents one that nothing reads.
func TestReference_EveryConfigurationVariable(t *testing.T) {
	vars := configVariables(t, serverSources(t))
	if len(vars) < 30 {
		t.Fatalf("found only %d configuration variables (%v): the scan is broken", len(vars), sorted(vars))
	}
	documented := column(section(t, readPage(t), configHeading), 0)
	for _, name := range sorted(vars) {
		if !documented[name] {
			t.Errorf("%s is read by %s but has no row in docs/reference.md under %q: add a row "+
				"\"| `%s` | default | valid values | meaning |\" to that table", name, vars[name], configHeading, name)
		}
	}
	for _, name := range sorted(documented) {
		if _, ok := vars[name]; !ok && envName.MatchString(name) {
			t.Errorf("docs/reference.md documents %s under %q, but the server does not read it: remove its row", name, configHeading)
		}
	}
}

// errorVocabulary returns every extensions.code and extensions.reason the
// server can produce, read from its source: constants named Code… / …Code
// and Reason…, "code"/"reason" keys and Code/Reason fields given a literal,
// and literal arguments passed for a parameter named code or reason (as
// writeError(w, status, "BAD_REQUEST", …) is called). gqlgen's own parse
// and validation codes are added from its errcode package.
func errorVocabulary(t *testing.T, files []sourceFile) (codes, reasons found) {
	t.Helper()
	codes, reasons = found{}, found{}
	classify := func(name, value, where string) {
		lower := strings.ToLower(name)
		switch {
		case !envName.MatchString(value):
		case strings.HasPrefix(lower, "reason"):
			reasons.add(value, where)
		case strings.HasPrefix(lower, "code") || strings.HasSuffix(lower, "code"):
			codes.add(value, where)
		}
	}
	// Parameters named code or reason, by function name.
	params := map[string]map[int]string{}
	for _, sf := range files {
		for _, d := range sf.file.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil {
				continue
			}
			i := 0
			for _, field := range fn.Type.Params.List {
				names := field.Names
				if len(names) == 0 {
					i++
					continue
				}
				for _, n := range names {
					if n.Name == "code" || n.Name == "reason" {
						if params[fn.Name.Name] == nil {
							params[fn.Name.Name] = map[int]string{}
						}
						params[fn.Name.Name][i] = n.Name
					}
					i++
				}
			}
		}
	}
	for _, sf := range files {
		ast.Inspect(sf.file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.ValueSpec:
				for i, id := range n.Names {
					if i < len(n.Values) {
						if v, ok := stringLit(n.Values[i]); ok {
							classify(id.Name, v, sf.path+" ("+id.Name+")")
						}
					}
				}
			case *ast.KeyValueExpr:
				v, ok := stringLit(n.Value)
				if !ok {
					return true
				}
				switch k := n.Key.(type) {
				case *ast.BasicLit:
					if key, ok := stringLit(k); ok && (key == "code" || key == "reason") {
						classify(key, v, sf.path)
					}
				case *ast.Ident:
					if k.Name == "Code" || k.Name == "Reason" {
						classify(k.Name, v, sf.path)
					}
				}
			case *ast.CallExpr:
				var name string
				switch fn := n.Fun.(type) {
				case *ast.Ident:
					name = fn.Name
				case *ast.SelectorExpr:
					name = fn.Sel.Name
				}
				for i, kind := range params[name] {
					if i < len(n.Args) {
						if v, ok := stringLit(n.Args[i]); ok {
							classify(kind, v, sf.path+" ("+name+")")
						}
					}
				}
			}
			return true
		})
	}
	codes.add(errcode.ParseFailed, "gqlgen (errcode.ParseFailed)")
	codes.add(errcode.ValidationFailed, "gqlgen (errcode.ValidationFailed)")
	return codes, reasons
}

// TestReference_EveryErrorCodeAndReason fails when the server can answer
// with an extensions.code or extensions.reason that the error table does not
// explain, or the table explains one the server never sends.
func TestReference_EveryErrorCodeAndReason(t *testing.T) {
	codes, reasons := errorVocabulary(t, serverSources(t))
	if len(codes) < 8 || len(reasons) < 20 {
		t.Fatalf("found only codes %v and reasons %v: the scan is broken", sorted(codes), sorted(reasons))
	}
	table := section(t, readPage(t), errorsHeading)
	documentedCodes, documentedReasons := column(table, 0), column(table, 1)
	for _, c := range sorted(codes) {
		if !documentedCodes[c] {
			t.Errorf("the code %s (%s) has no row in the error table of docs/reference.md under %q: add a row "+
				"\"| `%s` | reason or empty | HTTP status | when | what the client should do |\"", c, codes[c], errorsHeading, c)
		}
	}
	for _, r := range sorted(reasons) {
		if !documentedReasons[r] {
			t.Errorf("the reason %s (%s) has no row in the error table of docs/reference.md under %q: add a row "+
				"\"| `CODE` | `%s` | HTTP status | when | what the client should do |\" under the code it refines", r, reasons[r], errorsHeading, r)
		}
	}
	for _, c := range sorted(documentedCodes) {
		if _, ok := codes[c]; !ok {
			t.Errorf("docs/reference.md explains the code %s under %q, but the server never sends it: remove its row", c, errorsHeading)
		}
	}
	for _, r := range sorted(documentedReasons) {
		if _, ok := reasons[r]; !ok {
			t.Errorf("docs/reference.md explains the reason %s under %q, but the server never sends it: remove it", r, errorsHeading)
		}
	}
}

// TestReference_EveryCloseCode fails when the WebSocket guard can close
// with a graphql-transport-ws code (4000–4999, a constant named Close…), or
// with 1001 (Going Away, at shutdown), that the close-code table does not
// list, or the table lists one it does not send.
func TestReference_EveryCloseCode(t *testing.T) {
	sent := found{}
	for _, sf := range serverSources(t) {
		ast.Inspect(sf.file, func(n ast.Node) bool {
			spec, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			for i, id := range spec.Names {
				if i >= len(spec.Values) || !strings.HasPrefix(id.Name, "Close") {
					continue
				}
				if lit, ok := spec.Values[i].(*ast.BasicLit); ok && lit.Kind == token.INT {
					if v, err := strconv.Atoi(lit.Value); err == nil && (v >= 4000 && v < 5000 || v == 1001) {
						sent.add(lit.Value, sf.path+" ("+id.Name+")")
					}
				}
			}
			return true
		})
	}
	if len(sent) < 5 {
		t.Fatalf("found only the close codes %v: the scan is broken", sorted(sent))
	}
	listed := column(section(t, readPage(t), closeHeading), 0)
	for _, c := range sorted(sent) {
		if !listed[c] {
			t.Errorf("the close code %s (%s) has no row in docs/reference.md under %q: add a row "+
				"\"| `%s` | when | what the client should do |\"", c, sent[c], closeHeading, c)
		}
	}
	for _, c := range sorted(listed) {
		if _, ok := sent[c]; !ok {
			t.Errorf("docs/reference.md lists the close code %s under %q, but the server never sends it: remove its row", c, closeHeading)
		}
	}
}

// TestReference_EveryRoute fails when a handler is registered on a path
// (mux.Handle and mux.HandleFunc patterns, constants resolved) that the
// endpoint table does not list.
func TestReference_EveryRoute(t *testing.T) {
	files := serverSources(t)
	consts := map[string]string{}
	for _, sf := range files {
		ast.Inspect(sf.file, func(n ast.Node) bool {
			if spec, ok := n.(*ast.ValueSpec); ok {
				for i, id := range spec.Names {
					if i < len(spec.Values) {
						if v, ok := stringLit(spec.Values[i]); ok {
							consts[id.Name] = v
						}
					}
				}
			}
			return true
		})
	}
	// value evaluates a pattern: literals and string constants joined by +.
	var value func(e ast.Expr) (string, bool)
	value = func(e ast.Expr) (string, bool) {
		switch e := e.(type) {
		case *ast.BasicLit:
			return stringLit(e)
		case *ast.Ident:
			v, ok := consts[e.Name]
			return v, ok
		case *ast.SelectorExpr:
			v, ok := consts[e.Sel.Name]
			return v, ok
		case *ast.BinaryExpr:
			if e.Op != token.ADD {
				return "", false
			}
			x, ok1 := value(e.X)
			y, ok2 := value(e.Y)
			return x + y, ok1 && ok2
		}
		return "", false
	}
	routes := found{}
	for _, sf := range files {
		ast.Inspect(sf.file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) != 2 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "Handle" && sel.Sel.Name != "HandleFunc") {
				return true
			}
			pattern, ok := value(call.Args[0])
			if !ok {
				t.Errorf("%s: a route whose pattern cannot be read from the source: make it a constant expression", sf.path)
				return true
			}
			// "GET /playground/{version}/{file...}" is the path /playground/…
			_, path, hasMethod := strings.Cut(pattern, " ")
			if !hasMethod {
				path = pattern
			}
			if i := strings.IndexByte(path, '{'); i >= 0 {
				path = path[:i]
			}
			routes.add(path, sf.path+" ("+pattern+")")
			return true
		})
	}
	if len(routes) < 6 {
		t.Fatalf("found only the routes %v: the scan is broken", sorted(routes))
	}
	listed := column(section(t, readPage(t), routesHeading), 1)
	for _, path := range sorted(routes) {
		ok := listed[path]
		for l := range listed {
			// /playground/ is listed as /playground/<digest>/<file>.
			ok = ok || (path != "/" && strings.HasSuffix(path, "/") && strings.HasPrefix(l, path))
		}
		if !ok {
			t.Errorf("the route %s (%s) has no row in docs/reference.md under %q: add a row "+
				"\"| `METHOD` | `%s` | what it answers | status codes |\"", path, routes[path], routesHeading, path)
		}
	}
}

// TestReference_SchemaSectionIsCurrent fails when schema.graphqls changed
// and `go generate ./docs/` was not run.
func TestReference_SchemaSectionIsCurrent(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(repositoryRoot, "schema.graphqls"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := RenderSchema("schema.graphqls", src)
	if err != nil {
		t.Fatal(err)
	}
	page := readPage(t)
	spliced, err := Splice(page, want)
	if err != nil {
		t.Fatal(err)
	}
	if spliced != page {
		t.Errorf("the schema section of docs/reference.md is not what schema.graphqls says: run go generate ./docs/ and commit the page")
	}
}

// TestReference_ReadmeLinksHere fails when the README sends readers to a
// contract file the repository does not hold instead of to this page.
func TestReference_ReadmeLinksHere(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repositoryRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	if !strings.Contains(readme, "(docs/reference.md)") {
		t.Error("README.md does not link to docs/reference.md")
	}
	for i, line := range strings.Split(readme, "\n") {
		if strings.Contains(line, "API.md") {
			t.Errorf("README.md:%d mentions API.md, which users of the repository do not have: link to docs/reference.md instead", i+1)
		}
	}
}

// TestReference_EveryOperationHasItsRules fails when a query, mutation or
// subscription of schema.graphqls has no row in the hand-written rules
// table (its bounds, side effects and errors), or a row names an operation
// the schema does not have.
func TestReference_EveryOperationHasItsRules(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(repositoryRoot, "schema.graphqls"))
	if err != nil {
		t.Fatal(err)
	}
	schema, err := gqlparser.LoadSchema(&gqlast.Source{Name: "schema.graphqls", Input: string(src)})
	if err != nil {
		t.Fatal(err)
	}
	operations := found{}
	for _, root := range []*gqlast.Definition{schema.Query, schema.Mutation, schema.Subscription} {
		if root == nil {
			continue
		}
		for _, f := range root.Fields {
			if !strings.HasPrefix(f.Name, "__") {
				operations.add(f.Name, root.Name)
			}
		}
	}
	listed := column(section(t, readPage(t), rulesHeading), 0)
	for _, op := range sorted(operations) {
		if !listed[op] {
			t.Errorf("%s.%s has no row in docs/reference.md under %q: add a row "+
				"\"| `%s` | bounds, side effects | errors it returns |\"", operations[op], op, rulesHeading, op)
		}
	}
	for _, op := range sorted(listed) {
		if _, ok := operations[op]; !ok {
			t.Errorf("docs/reference.md has rules for %s under %q, but the schema has no such operation: remove its row", op, rulesHeading)
		}
	}
}
