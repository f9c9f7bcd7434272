// Package playground serves GraphiQL, the in-browser GraphQL IDE, pointed at
// /graphql. Every script, style sheet, font and image it loads is embedded in
// the binary and served under Prefix, so the page works on a machine without
// internet, and its Content-Security-Policy can name this server as the only
// source of anything: a token pasted into the page can be sent nowhere else.
//
// dist/ holds the pinned browser builds of GraphiQL and React (see
// package.json and update.sh); static/ holds the page's own script and style.
package playground

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Prefix is the path under which the page's assets are served; Handler
// answers for GET / and for everything below Prefix.
const Prefix = "/playground/"

//go:embed index.html
var indexHTML string

//go:embed passkeys.html
var passkeysHTML string

//go:embed dist static
var assets embed.FS

// contentTypes are the types of the files that may be served, set here
// rather than looked up in the host's MIME table (which may lack woff2, or
// say something else): an extension not listed is not served at all.
var contentTypes = map[string]string{
	".js":    "text/javascript; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".woff2": "font/woff2",
	".woff":  "font/woff",
	".png":   "image/png",
	".svg":   "image/svg+xml",
	".txt":   "text/plain; charset=utf-8",
}

// PasskeysPath is the passkeys page: an example of the WebAuthn ceremonies
// for frontend teams, and the page the end-to-end suite drives.
const PasskeysPath = "/passkeys"

// Handler serves the page at GET /, the passkeys page at GET PasskeysPath,
// and their assets at
// GET Prefix<version>/<file>. The version is a digest of every embedded
// asset, so asset URLs change whenever an asset does and may be cached for
// good; the page itself is revalidated on every load.
func Handler() http.Handler {
	version, etags := assetDigest()
	base := Prefix + version + "/"
	var page strings.Builder
	if err := template.Must(template.New("index").Parse(indexHTML)).Execute(&page, struct{ Base string }{base}); err != nil {
		panic("playground: render index.html: " + err.Error()) // the template is embedded: a test catches this
	}
	body := page.String()
	var pk strings.Builder
	if err := template.Must(template.New("passkeys").Parse(passkeysHTML)).Execute(&pk, struct{ Base string }{base}); err != nil {
		panic("playground: render passkeys.html: " + err.Error())
	}
	passkeysBody := pk.String()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", policy(r.Host))
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		io.WriteString(w, body)
	})
	mux.HandleFunc("GET "+PasskeysPath, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", passkeysPolicy)
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		io.WriteString(w, passkeysBody)
	})
	mux.HandleFunc("GET "+Prefix+"{version}/{file...}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("file")
		ctype, ok := contentTypes[path.Ext(name)]
		etag, known := etags[name]
		if r.PathValue("version") != version || !ok || !known {
			http.NotFound(w, r)
			return
		}
		f, err := assets.Open(name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer f.Close()
		h := w.Header()
		h.Set("Content-Type", ctype)
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
		h.Set("ETag", etag)
		// Embedded files are seekable; ServeContent answers ranges and If-None-Match.
		http.ServeContent(w, r, name, time.Time{}, f.(io.ReadSeeker))
	})
	return mux
}

// assetDigest is digest, computed once: the embedded files never change,
// and hashing 4 MB for every server a test starts adds up (26 ms each).
var assetDigest = sync.OnceValues(digest)

// digest returns a short hash over every embedded asset's name and content,
// and each asset's ETag by its path.
func digest() (string, map[string]string) {
	all := sha256.New()
	etags := map[string]string{}
	err := fs.WalkDir(assets, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assets.ReadFile(name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		etags[name] = `"` + hex.EncodeToString(sum[:12]) + `"`
		io.WriteString(all, name+"\x00")
		all.Write(sum[:])
		return nil
	})
	if err != nil {
		panic("playground: read embedded assets: " + err.Error())
	}
	return hex.EncodeToString(all.Sum(nil)[:6]), etags
}

// policy is the page's Content-Security-Policy: everything from this server
// and nothing from anywhere else, no inline script, no eval.
func policy(host string) string {
	connect := "connect-src 'self'"
	// Subscriptions use a WebSocket to this host; older browsers do not count
	// ws: and wss: as 'self', so the host is named. It comes from the request,
	// so it is named only when it is a plain host[:port] that cannot add a
	// source or a directive of its own.
	if hostPort.MatchString(host) {
		connect += " ws://" + host + " wss://" + host
	}
	return strings.Join([]string{
		"default-src 'none'",
		"script-src 'self'",
		// 'unsafe-inline' for styles only: GraphiQL's dialogs (Radix, through
		// react-remove-scroll) insert a <style> element at run time, without a
		// nonce this page could give them. A style cannot send a token
		// anywhere: connect-src, img-src and font-src still allow 'self' alone.
		"style-src 'self' 'unsafe-inline'",
		"font-src 'self'",
		"img-src 'self'",
		connect,
		"frame-ancestors 'none'",
		"base-uri 'none'",
		"form-action 'none'",
	}, "; ")
}

// passkeysPolicy is the passkeys page's Content-Security-Policy: its script,
// style and icon from this server, requests to this server, nothing inline,
// nothing from anywhere else. WebAuthn itself needs no source: the
// ceremonies are the browser's.
var passkeysPolicy = strings.Join([]string{
	"default-src 'none'",
	"script-src 'self'",
	"style-src 'self'",
	"img-src 'self'",
	"connect-src 'self'",
	"frame-ancestors 'none'",
	"base-uri 'none'",
	"form-action 'none'",
}, "; ")

// hostPort matches a DNS name or IP literal with an optional port.
var hostPort = regexp.MustCompile(`^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$`)
