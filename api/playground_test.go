package api_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"tollgate/db/dbtest"
)

// cspDirectives splits a Content-Security-Policy into its directives' sources.
func cspDirectives(t *testing.T, csp string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, d := range strings.Split(csp, ";") {
		fields := strings.Fields(d)
		if len(fields) == 0 {
			continue
		}
		if _, dup := out[fields[0]]; dup {
			t.Errorf("CSP names %s twice: %q", fields[0], csp)
		}
		out[fields[0]] = fields[1:]
	}
	return out
}

func TestPlayground_CSPAllowsThisServerOnly(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	page := s.send(t, "GET", "/", nil, "")
	if page.Status != http.StatusOK || !strings.HasPrefix(page.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %q, want 200 text/html", page.Status, page.Header.Get("Content-Type"))
	}
	csp := page.Header.Get("Content-Security-Policy")
	dirs := cspDirectives(t, csp)
	for name, want := range map[string]string{
		"default-src": "'none'", "script-src": "'self'", "font-src": "'self'", "img-src": "'self'",
		"frame-ancestors": "'none'", "base-uri": "'none'", "form-action": "'none'",
	} {
		if got := strings.Join(dirs[name], " "); got != want {
			t.Errorf("CSP %s = %q, want %q (in %q)", name, got, want, csp)
		}
	}
	host := strings.TrimPrefix(s.URL, "http://")
	if got, want := strings.Join(dirs["connect-src"], " "), "'self' ws://"+host+" wss://"+host; got != want {
		t.Errorf("CSP connect-src = %q, want %q", got, want)
	}
	for name, sources := range dirs {
		for _, src := range sources {
			// Only keywords and this server's own WebSocket: no scheme
			// (https:, data:, blob:), host or wildcard that reaches elsewhere.
			keyword := strings.HasPrefix(src, "'")
			ownSocket := src == "ws://"+host || src == "wss://"+host
			if !keyword && !ownSocket {
				t.Errorf("CSP %s allows %q", name, src)
			}
		}
	}
	for _, src := range dirs["script-src"] {
		if strings.Contains(src, "unsafe") {
			t.Errorf("CSP script-src allows %s", src)
		}
	}
}

// A Host header is reflected into connect-src only when it is a plain
// host[:port]: one carrying a ";" or a space cannot add a directive.
func TestPlayground_CSPIgnoresHostileHost(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	req, err := http.NewRequest("GET", s.URL+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "evil.example;script-src"
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	csp := res.Header.Get("Content-Security-Policy")
	if res.StatusCode != http.StatusOK || strings.Contains(csp, "evil") {
		t.Errorf("Host %q: %d, CSP %q", req.Host, res.StatusCode, csp)
	}
	if got := strings.Join(cspDirectives(t, csp)["connect-src"], " "); got != "'self'" {
		t.Errorf("connect-src = %q, want 'self' alone", got)
	}
}

// pageRefs matches the src and href attributes of the page's elements. The
// page is our own template of a dozen lines, so a regular expression is
// enough; the test also counts the tags, so that a reference it fails to
// match cannot pass unchecked.
var (
	pageRefs = regexp.MustCompile(`<(script|link)\b[^>]*?\s(?:src|href)="([^"]*)"`)
	pageTags = regexp.MustCompile(`<(?:script|link)\b`)
	cssURLs  = regexp.MustCompile(`url\(\s*["']?([^"')]+)["']?\s*\)`)
	// inline matches what the CSP would refuse or what would need
	// 'unsafe-inline' for scripts: a script element without src, a handler attribute.
	inline = regexp.MustCompile(`<script>|<script\s[^>]*>[^<]|\son[a-z]+=|\sstyle=`)
)

func TestPlayground_ServesEveryAssetItReferences(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	page := s.send(t, "GET", "/", nil, "")
	refs := pageRefs.FindAllStringSubmatch(page.Raw, -1)
	if n := len(pageTags.FindAllString(page.Raw, -1)); n != len(refs) || n < 4 {
		t.Fatalf("page has %d script/link tags, %d with a src/href:\n%s", n, len(refs), page.Raw)
	}
	if inline.MatchString(page.Raw) {
		t.Errorf("page has an inline script, style or handler:\n%s", page.Raw)
	}
	wantType := map[string]string{".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml",
		".woff2": "font/woff2", ".woff": "font/woff", ".png": "image/png"}
	base, err := url.Parse(s.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	var fetch func(ref *url.URL, from string)
	fetched := map[string]bool{}
	fetch = func(ref *url.URL, from string) {
		u := base.ResolveReference(ref)
		if u.Host != base.Host || !strings.HasPrefix(u.Path, "/playground/") {
			t.Errorf("%s references %s, not an asset of this server", from, ref)
			return
		}
		if fetched[u.Path] {
			return
		}
		fetched[u.Path] = true
		res := s.send(t, "GET", u.Path, nil, "")
		ext := u.Path[strings.LastIndex(u.Path, "."):]
		if res.Status != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), wantType[ext]) || wantType[ext] == "" {
			t.Errorf("GET %s (from %s) = %d %q", u.Path, from, res.Status, res.Header.Get("Content-Type"))
			return
		}
		if cc := res.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
			t.Errorf("GET %s: Cache-Control %q, want immutable (the URL is versioned)", u.Path, cc)
		}
		if res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff", u.Path)
		}
		if ext == ".css" {
			for _, m := range cssURLs.FindAllStringSubmatch(res.Raw, -1) {
				next, err := url.Parse(m[1])
				if err != nil {
					t.Errorf("%s: url(%s): %v", u.Path, m[1], err)
					continue
				}
				fetch(u.ResolveReference(next), u.Path)
			}
		}
	}
	for _, m := range refs {
		ref, err := url.Parse(m[2])
		if err != nil {
			t.Fatalf("%s: %v", m[2], err)
		}
		fetch(ref, "/")
	}
	// The page's scripts and styles, GraphiQL's fonts and images.
	for _, ext := range []string{".js", ".css", ".woff2", ".png", ".svg"} {
		found := false
		for p := range fetched {
			found = found || strings.HasSuffix(p, ext)
		}
		if !found {
			t.Errorf("no %s asset among %d fetched: %v", ext, len(fetched), fetched)
		}
	}

	// An asset of another build, or a file that is not one, is not found.
	some := refs[0][2]
	parts := strings.SplitN(strings.TrimPrefix(some, "/playground/"), "/", 2)
	for _, path := range []string{"/playground/000000000000/" + parts[1], "/playground/" + parts[0] + "/dist/nope.js",
		"/playground/" + parts[0] + "/dist/", "/playground/" + parts[0] + "/index.html"} {
		if res := s.send(t, "GET", path, nil, ""); res.Status != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, res.Status)
		}
	}
}

// With the Playground off (production), neither the page nor its assets exist.
func TestPlayground_RoutesAbsentWhenOff(t *testing.T) {
	dev := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	refs := pageRefs.FindAllStringSubmatch(dev.send(t, "GET", "/", nil, "").Raw, -1)
	if len(refs) == 0 {
		t.Fatal("development page references no asset")
	}
	for name, env := range map[string]map[string]string{
		"production":     {"APP_ENV": "production"},
		"PLAYGROUND=off": {"PLAYGROUND": "off"},
	} {
		s := newTestServer(t, dbtest.URL(t, "sqlite"), env)
		for _, path := range []string{"/", refs[0][2]} {
			if res := s.send(t, "GET", path, nil, ""); res.Status != http.StatusNotFound {
				t.Errorf("%s: GET %s = %d, want 404", name, path, res.Status)
			}
		}
	}
}

// The passkeys page: HTML from the binary, every asset it references from
// this server, nothing inline, a CSP of 'self' only (no 'unsafe-inline' at
// all), and absent with the Playground.
func TestPasskeysPage_ServedWithSelfOnlyCSP(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	page := s.send(t, "GET", "/passkeys", nil, "")
	if page.Status != http.StatusOK || !strings.HasPrefix(page.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /passkeys = %d %q", page.Status, page.Header.Get("Content-Type"))
	}
	if inline.MatchString(page.Raw) {
		t.Errorf("page has an inline script, style or handler:\n%s", page.Raw)
	}
	csp := page.Header.Get("Content-Security-Policy")
	dirs := cspDirectives(t, csp)
	for name, want := range map[string]string{"default-src": "'none'", "script-src": "'self'", "style-src": "'self'",
		"connect-src": "'self'", "img-src": "'self'", "frame-ancestors": "'none'", "base-uri": "'none'", "form-action": "'none'"} {
		if got := strings.Join(dirs[name], " "); got != want {
			t.Errorf("CSP %s = %q, want %q", name, got, want)
		}
	}
	refs := pageRefs.FindAllStringSubmatch(page.Raw, -1)
	if len(refs) != 3 {
		t.Fatalf("the page references %d assets, want its icon, style and script", len(refs))
	}
	for _, ref := range refs {
		if res := s.send(t, "GET", ref[2], nil, ""); res.Status != http.StatusOK || !strings.HasPrefix(ref[2], "/playground/") {
			t.Errorf("GET %s = %d", ref[2], res.Status)
		}
	}
	off := newTestServer(t, dbtest.URL(t, "sqlite"), map[string]string{"PLAYGROUND": "off"})
	if res := off.send(t, "GET", "/passkeys", nil, ""); res.Status != http.StatusNotFound {
		t.Errorf("PLAYGROUND=off: GET /passkeys = %d, want 404", res.Status)
	}
}
