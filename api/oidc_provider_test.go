package api_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// testProvider is an OpenID provider in the test process: discovery, keys,
// an authorization endpoint that consents at once, and a token endpoint
// that checks the code, the client and the PKCE verifier. Its ID tokens are
// signed with go-jose; each knob below spoils the next ones in one way.
type testProvider struct {
	t        *testing.T
	srv      *httptest.Server
	clientID string
	secret   string
	key      *rsa.PrivateKey
	// clock is the server's clock: the times in the tokens.
	clock func() time.Time

	mu    sync.Mutex
	codes map[string]grant
	// sub, email and emailVerified are what the next consent says.
	sub           string
	email         string
	emailVerified any
	// deny makes the authorization endpoint answer error=access_denied.
	deny bool
	// mutate changes the claims of the next ID tokens; sign, when set,
	// signs them instead of the provider's key.
	mutate func(claims map[string]any)
	sign   func(payload []byte) string
	// tokenStatus, when set, is the token endpoint's status (an error);
	// hang makes it wait until the client gives up.
	tokenStatus int
	hang        bool
	// tokenCalls counts the exchanges.
	tokenCalls int
	// done ends hanging requests when the test ends.
	done chan struct{}
}

type grant struct {
	nonce, challenge, redirectURI, sub, email string
	emailVerified                             any
}

func newTestProvider(t *testing.T, clock func() time.Time) *testProvider {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := &testProvider{t: t, clientID: "tollgate-test", secret: "s3cret-never-logged", key: key, clock: clock,
		codes: map[string]grant{}, sub: "sub-1", email: "Fed.User@Example.com", emailVerified: true}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                p.srv.URL,
			"authorization_endpoint":                p.srv.URL + "/authorize",
			"token_endpoint":                        p.srv.URL + "/token",
			"jwks_uri":                              p.srv.URL + "/jwks",
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"response_types_supported":              []string{"code"},
			"subject_types_supported":               []string{"public"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &p.key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	mux.HandleFunc("GET /authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		back, _ := url.Parse(q.Get("redirect_uri"))
		out := url.Values{"state": {q.Get("state")}}
		p.mu.Lock()
		defer p.mu.Unlock()
		switch {
		case q.Get("client_id") != p.clientID || q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "":
			out.Set("error", "invalid_request")
		case p.deny:
			out.Set("error", "access_denied")
		default:
			code := randomString(t)
			p.codes[code] = grant{nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), redirectURI: q.Get("redirect_uri"),
				sub: p.sub, email: p.email, emailVerified: p.emailVerified}
			out.Set("code", code)
		}
		back.RawQuery = out.Encode()
		http.Redirect(w, r, back.String(), http.StatusFound)
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.tokenCalls++
		status, hang := p.tokenStatus, p.hang
		p.mu.Unlock()
		if hang {
			// Until the client gives up (its body read, so that the server
			// notices the connection closing), or the test ends.
			r.ParseForm()
			select {
			case <-r.Context().Done():
			case <-p.done:
			}
			return
		}
		if status != 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			w.Write([]byte(`{"error":"temporarily_unavailable"}`))
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		id, secret, ok := r.BasicAuth()
		if !ok {
			id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		p.mu.Lock()
		g, found := p.codes[r.PostForm.Get("code")]
		delete(p.codes, r.PostForm.Get("code"))
		p.mu.Unlock()
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if !found || id != p.clientID || secret != p.secret || r.PostForm.Get("grant_type") != "authorization_code" ||
			base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge || r.PostForm.Get("redirect_uri") != g.redirectURI {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":"invalid_grant"}`))
			return
		}
		now := p.clock()
		claims := map[string]any{"iss": p.srv.URL, "aud": p.clientID, "sub": g.sub, "nonce": g.nonce,
			"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "email": g.email, "email_verified": g.emailVerified}
		p.mu.Lock()
		mutate, sign := p.mutate, p.sign
		p.mu.Unlock()
		if mutate != nil {
			mutate(claims)
		}
		payload, _ := json.Marshal(claims)
		var idToken string
		if sign != nil {
			idToken = sign(payload)
		} else {
			idToken = signRS256(t, p.key, "k1", payload)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": "at-" + randomString(t), "token_type": "Bearer", "expires_in": 300, "id_token": idToken})
	})
	p.done = make(chan struct{})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	t.Cleanup(func() { close(p.done) }) // runs first: Close waits for the handlers
	return p
}

// set changes the provider's knobs under its lock.
func (p *testProvider) set(f func(p *testProvider)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

func signRS256(t *testing.T, key *rsa.PrivateKey, kid string, payload []byte) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func randomString(t *testing.T) string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
