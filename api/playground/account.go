package playground

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"io"
	"net/http"
	"strings"
)

// The account pages: /verify-email and /reset-password, the pages that the
// links in Tollgate's mails open (unless MAIL_LINK_URL points them at an
// application's own). Each reads ?token= and finishes its flow through
// /graphql. Like GraphiQL's page, they load nothing but their own script and
// style from this server, and their Content-Security-Policy allows nothing
// else: a page that holds a reset token can send it nowhere but here.

// AccountPrefix is the path under which the account pages' assets are served.
const AccountPrefix = "/account/"

//go:embed account
var accountFiles embed.FS

// accountPage is what an account page's template sees.
type accountPage struct {
	Base string
	// Flow names the page's form for account.js: verify or reset.
	Flow  string
	Title string
}

// AccountHandler serves GET /verify-email, GET /reset-password and their
// assets under AccountPrefix.
func AccountHandler() http.Handler {
	version, files := accountAssets()
	base := AccountPrefix + version + "/"
	tmpl := template.Must(template.ParseFS(accountFiles, "account/page.html"))
	render := func(p accountPage) string {
		var b strings.Builder
		if err := tmpl.Execute(&b, p); err != nil {
			panic("playground: render account page: " + err.Error()) // embedded: a test catches this
		}
		return b.String()
	}
	page := func(p accountPage) http.HandlerFunc {
		body := render(p)
		return func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("Content-Security-Policy", accountPolicy)
			h.Set("Content-Type", "text/html; charset=utf-8")
			// The URL holds a token: no cache may keep the page under it.
			h.Set("Cache-Control", "no-store")
			io.WriteString(w, body)
		}
	}
	mux := http.NewServeMux()
	// Each route is registered with a literal pattern, so that the routes
	// can be read from the source (docs/reference_test.go lists them).
	mux.HandleFunc("GET /verify-email", page(accountPage{Base: base, Flow: "verify", Title: "Confirm your email address"}))
	mux.HandleFunc("GET /reset-password", page(accountPage{Base: base, Flow: "reset", Title: "Choose a new password"}))
	mux.HandleFunc("GET "+AccountPrefix+"{version}/{file}", func(w http.ResponseWriter, r *http.Request) {
		f, ok := files[r.PathValue("file")]
		if r.PathValue("version") != version || !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", f.ctype)
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
		io.WriteString(w, f.body)
	})
	return mux
}

// accountPolicy allows this server's own script, style and /graphql, and
// nothing else: no inline script or style, no frames, no form posts.
const accountPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

type accountAsset struct {
	ctype, body string
}

// accountAssets returns a digest of the pages' assets (their URL's version,
// so that they may be cached for good) and the assets by name.
func accountAssets() (string, map[string]accountAsset) {
	files := map[string]accountAsset{}
	sum := sha256.New()
	for name, ctype := range map[string]string{"account.js": contentTypes[".js"], "account.css": contentTypes[".css"]} {
		b, err := accountFiles.ReadFile("account/" + name)
		if err != nil {
			panic("playground: read account asset: " + err.Error())
		}
		files[name] = accountAsset{ctype: ctype, body: string(b)}
	}
	for _, name := range []string{"account.css", "account.js"} {
		io.WriteString(sum, name+"\x00"+files[name].body)
	}
	return hex.EncodeToString(sum.Sum(nil)[:6]), files
}
