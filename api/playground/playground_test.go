package playground

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"
)

// A check finds one way an embedded file could make the browser load
// something from another host. The bundles are full of URLs that load
// nothing (license headers, links in error messages and comments, spec
// references), so a check looks for a URL with a scheme, or a
// protocol-relative one, where it is fetched: a CSS url() or @import, an HTML
// src/href, a string handed to a loader in a script; and for the hosts that
// serve browser code and fonts, anywhere at all.
//
// A check is literals (lower case, matched in the lower-cased text) each
// followed by what next matches, if set: scanning 3.5 MB for literals first
// keeps the test fast under -race, where one big regular expression is not.
type check struct {
	literals []string
	next     *regexp.Regexp
}

var remote = regexp.MustCompile(`^\s*["'\x60]?\s*(https?:|wss?:|//)`)

var externalLoad = map[string]check{
	"css url() or @import to another host": {[]string{"url("}, remote},
	"css @import":                          {[]string{"@import"}, nil},
	"css url() with a data: URL":           {[]string{"url("}, regexp.MustCompile(`^\s*["']?\s*data:`)},
	"src/href to another host":             {[]string{"src=", "href="}, remote},
	"script loader of a URL": {[]string{"import(", "importscripts(", "new worker(", "new sharedworker(", "fetch(",
		"new websocket(", "new eventsource(", ".src=", ".src ="}, remote},
	"a CDN or font host": {[]string{"cdn.jsdelivr.net", "unpkg.com", "esm.sh", "cdnjs.cloudflare.com",
		"fonts.googleapis.com", "fonts.gstatic.com", "cdn.skypack.dev", "ga.jspm.io"}, nil},
	"a source map to fetch": {[]string{"sourcemappingurl="}, nil},
}

// find returns the offset of c's first match in lower-cased text, or -1.
func (c check) find(text string) int {
	for _, lit := range c.literals {
		for from := 0; ; {
			i := strings.Index(text[from:], lit)
			if i < 0 {
				break
			}
			at := from + i
			if c.next == nil || c.next.MatchString(text[at+len(lit):min(at+len(lit)+80, len(text))]) {
				return at
			}
			from = at + len(lit)
		}
	}
	return -1
}

// checks says which apply to which files. src/href is not looked for in
// scripts: markdown-it's comments hold `href="//example.com/"`, and a
// script's own loads are what "script loader of a URL" covers.
var checks = map[string][]string{
	".js":   {"script loader of a URL", "a CDN or font host", "a source map to fetch"},
	".css":  {"css url() or @import to another host", "css @import", "css url() with a data: URL", "a CDN or font host", "a source map to fetch"},
	".html": {"src/href to another host", "css url() or @import to another host", "a CDN or font host"},
	".svg":  {"src/href to another host", "css url() or @import to another host", "a CDN or font host"},
}

func TestEmbeddedFiles_LoadNothingFromElsewhere(t *testing.T) {
	files := map[string]string{"index.html": indexHTML}
	err := fs.WalkDir(assets, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if _, text := checks[path.Ext(name)]; text {
			b, err := assets.ReadFile(name)
			files[name] = string(b)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, must := range []string{"index.html", "dist/graphiql.min.js", "dist/graphiql.min.css", "dist/react.production.min.js",
		"dist/react-dom.production.min.js", "static/playground.js", "static/playground.css"} {
		if _, ok := files[must]; !ok {
			t.Errorf("%s is not embedded", must)
		}
	}
	for name, text := range files {
		lower := strings.ToLower(text)
		for _, what := range checks[path.Ext(name)] {
			if at := externalLoad[what].find(lower); at >= 0 {
				t.Errorf("%s: %s: …%s…", name, what, text[max(at-60, 0):min(at+100, len(text))])
			}
		}
	}
}

// The checks must catch what they are meant to catch, and not a local load.
func TestExternalLoad_Matches(t *testing.T) {
	for what, sample := range map[string]string{
		"css url() or @import to another host": `src:url("https://fonts.example/x.woff2")`,
		"css @import":                          `@import "x.css";`,
		"css url() with a data: URL":           `src:url(data:font/woff2;base64,AAAA)`,
		"src/href to another host":             `<script src="//cdn.example/x.js">`,
		"script loader of a URL":               "import(`https://esm.example/x.js`)",
		"a CDN or font host":                   `// see https://unpkg.com/graphiql`,
		"a source map to fetch":                `//# sourceMappingURL=graphiql.min.js.map`,
	} {
		if externalLoad[what].find(strings.ToLower(sample)) < 0 {
			t.Errorf("%q does not match %q", what, sample)
		}
	}
	for what, sample := range map[string]string{
		"src/href to another host":             `<script src="/playground/x/dist/a.js">`,
		"css url() or @import to another host": `src:url(assets/1234.woff2)`,
		"script loader of a URL":               `fetch('/graphql', opts)`,
	} {
		if externalLoad[what].find(strings.ToLower(sample)) >= 0 {
			t.Errorf("%q matches a local load %q", what, sample)
		}
	}
}

// Every embedded file is served, with a type from contentTypes: none is
// left to the host's MIME table, and none is unreachable.
func TestHandler_ServesEveryEmbeddedFile(t *testing.T) {
	h := Handler()
	version, _ := digest()
	err := fs.WalkDir(assets, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, Prefix+version+"/"+name, nil))
		want, ok := contentTypes[path.Ext(name)]
		if rec.Code != http.StatusOK || !ok || rec.Header().Get("Content-Type") != want {
			t.Errorf("GET %s = %d %q, want 200 %q", name, rec.Code, rec.Header().Get("Content-Type"), want)
		}
		if got, _ := assets.ReadFile(name); rec.Body.String() != string(got) {
			t.Errorf("GET %s: body differs from the embedded file", name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The asset URLs change whenever an asset does, so that a long cache never
// serves an old file: the version is a digest of every embedded asset.
func TestHandler_PageNamesThisBuildsAssets(t *testing.T) {
	version, _ := digest()
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	body := rec.Body.String()
	if n := strings.Count(body, `="`+Prefix+version+`/`); n < 4 {
		t.Errorf("page names %d assets of version %s:\n%s", n, version, body)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("page Cache-Control = %q, want no-cache (it names the current version)", cc)
	}
}
