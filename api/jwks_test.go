package api_test

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/golang-jwt/jwt/v5"

	"tollgate/db/dbtest"
)

// fetchJWKS gets /.well-known/jwks.json over HTTP and decodes it with
// go-jose, as a client that verifies our tokens would.
func (s *testServer) fetchJWKS(t *testing.T) (jose.JSONWebKeySet, string) {
	t.Helper()
	res := s.send(t, "GET", "/.well-known/jwks.json", nil, "")
	if res.Status != 200 {
		t.Fatalf("GET /.well-known/jwks.json = %d: %s", res.Status, res.Raw)
	}
	if got, want := res.Header.Get("Content-Type"), "application/jwk-set+json"; got != want {
		t.Errorf("Content-Type = %q, want %q", got, want)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(res.Raw), &set); err != nil {
		t.Fatalf("decode JWKS %s: %v", res.Raw, err)
	}
	return set, res.Raw
}

// joseKID is the RFC 7638 thumbprint of pub as go-jose computes it: the kid
// any JWKS client would derive from the key alone.
func joseKID(t *testing.T, pub ed25519.PublicKey) string {
	t.Helper()
	sum, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(sum)
}

// writeEd25519Key writes a new Ed25519 private key as PKCS#8 PEM (what
// `openssl genpkey -algorithm ed25519` writes) into dir and returns it.
func writeEd25519Key(t *testing.T, dir, name string) (ed25519.PrivateKey, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return priv, writePEM(t, filepath.Join(dir, name), "PRIVATE KEY", der)
}

// writeEd25519PublicKey writes pub as PKIX PEM ("PUBLIC KEY") into dir.
func writeEd25519PublicKey(t *testing.T, dir, name string, pub ed25519.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, filepath.Join(dir, name), "PUBLIC KEY", der)
}

func writePEM(t *testing.T, path, typ string, der []byte) string {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := pem.Encode(f, &pem.Block{Type: typ, Bytes: der}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// kidOf reads the kid header of a token without verifying it.
func kidOf(t *testing.T, token string) string {
	t.Helper()
	tok, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := tok.Header["kid"].(string)
	return kid
}

// protectedWith calls { protected } with token and fails unless it answers.
func (s *testServer) protectedWith(t *testing.T, token, why string) {
	t.Helper()
	if res := s.post(t, token, `{ protected }`, nil); string(res.Data["protected"]) != protectedAnswer {
		t.Fatalf("%s: { protected } refused: %s", why, res.Raw)
	}
}

// Under HS256 the key is a shared secret: nothing may be published.
func TestJWKS_EmptyUnderHS256(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	res := s.send(t, "GET", "/.well-known/jwks.json", nil, "")
	if res.Status != 200 {
		t.Fatalf("status = %d, want 200", res.Status)
	}
	if got, want := res.Header.Get("Content-Type"), "application/jwk-set+json"; got != want {
		t.Errorf("Content-Type = %q, want %q", got, want)
	}
	if got, want := res.Raw, `{"keys":[]}`; got != want {
		t.Errorf("body = %s, want %s", got, want)
	}
}

// Whatever we publish must be enough for someone else's JWT library to verify
// our tokens: go-jose shares no code with golang-jwt, so a token it accepts
// against our JWKS is standard EdDSA, and a kid it derives itself is ours.
func TestJWKS_VerifiesEdDSATokensWithAnotherLibrary(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		// No key configured (development): one is generated and kept in the database.
		env := map[string]string{"JWT_ALG": "EdDSA", "JWT_SECRET": ""}
		s := newTestServer(t, url, env)
		p := s.register(t, "alice", "correct horse")
		set, raw := s.fetchJWKS(t)
		if len(set.Keys) != 1 {
			t.Fatalf("JWKS has %d keys, want 1: %s", len(set.Keys), raw)
		}

		tok, err := josejwt.ParseSigned(p.AccessToken, []jose.SignatureAlgorithm{jose.EdDSA})
		if err != nil {
			t.Fatalf("go-jose cannot parse the access token: %v", err)
		}
		if len(tok.Headers) != 1 {
			t.Fatalf("%d signature headers, want 1", len(tok.Headers))
		}
		h := tok.Headers[0]
		if h.Algorithm != string(jose.EdDSA) || h.ExtraHeaders[jose.HeaderType] != "at+jwt" {
			t.Errorf("header alg %q typ %v, want EdDSA at+jwt", h.Algorithm, h.ExtraHeaders[jose.HeaderType])
		}
		keys := set.Key(h.KeyID)
		if len(keys) != 1 {
			t.Fatalf("kid %q selects %d keys of %s", h.KeyID, len(keys), raw)
		}
		jwk := keys[0]
		pub, ok := jwk.Key.(ed25519.PublicKey)
		if !ok || !jwk.IsPublic() || !jwk.Valid() {
			t.Fatalf("JWKS key is %T (public %v, valid %v), want a valid Ed25519 public key", jwk.Key, jwk.IsPublic(), jwk.Valid())
		}
		if jwk.Algorithm != "EdDSA" || jwk.Use != "sig" {
			t.Errorf("JWK alg %q use %q, want EdDSA sig", jwk.Algorithm, jwk.Use)
		}
		if got, want := h.KeyID, joseKID(t, pub); got != want {
			t.Errorf("kid = %q, want the RFC 7638 thumbprint %q", got, want)
		}

		var std josejwt.Claims
		var ours struct {
			SessionID string `json:"sid"`
			Role      string `json:"role"`
			Fresh     bool   `json:"fresh"`
		}
		if err := tok.Claims(pub, &std, &ours); err != nil {
			t.Fatalf("go-jose refuses the signature: %v", err)
		}
		if err := std.Validate(josejwt.Expected{
			Issuer:      "tollgate",
			AnyAudience: josejwt.Audience{"tollgate"},
			Time:        s.Clock.Now(),
		}); err != nil {
			t.Errorf("go-jose refuses the claims: %v", err)
		}
		if std.Subject != p.User.ID || std.ID == "" || std.Expiry == nil || ours.SessionID == "" || ours.Role != "USER" || !ours.Fresh {
			t.Errorf("claims: %+v %+v", std, ours)
		}
		// And go-jose does check: under any other key the signature fails.
		if err := tok.Claims(ed25519.PublicKey(make([]byte, ed25519.PublicKeySize)), &std); err == nil {
			t.Errorf("go-jose accepted the token with a zero key")
		}

		s.protectedWith(t, p.AccessToken, "the token go-jose verified")

		// A second instance on the same database signs with the same generated
		// key: each accepts the other's tokens, and both publish the same set.
		b := newTestServer(t, url, env)
		q := b.register(t, "bob", "correct horse")
		s.protectedWith(t, q.AccessToken, "a token of the second instance, on the first")
		b.protectedWith(t, p.AccessToken, "a token of the first instance, on the second")
		if _, rawB := b.fetchJWKS(t); rawB != raw {
			t.Errorf("the two instances publish different sets:\n%s\n%s", raw, rawB)
		}
	})
}

// Algorithm confusion: a verifier that lets the token's header choose the
// algorithm can be made to check an HMAC keyed with the public key, which
// everyone has. Every such token, and one signed with another Ed25519 key
// under our kid, is refused.
func TestEdDSA_AlgorithmConfusionRefused(t *testing.T) {
	// A configured key, so that the test holds the private key too and can
	// show with a control that the forged claims themselves are acceptable.
	priv, keyFile := writeEd25519Key(t, t.TempDir(), "signing.pem")
	s := newTestServer(t, dbtest.URL(t, "sqlite"), map[string]string{"JWT_ALG": "EdDSA", "JWT_PRIVATE_KEY_FILE": keyFile})
	p := s.register(t, "alice", "correct horse")

	set, raw := s.fetchJWKS(t)
	if len(set.Keys) != 1 {
		t.Fatalf("JWKS has %d keys, want 1: %s", len(set.Keys), raw)
	}
	kid := set.Keys[0].KeyID
	if want := joseKID(t, priv.Public().(ed25519.PublicKey)); kid != want || kidOf(t, p.AccessToken) != want {
		t.Fatalf("kid: JWKS %q, token %q, want %q", kid, kidOf(t, p.AccessToken), want)
	}
	// The public key exactly as an attacker gets it: the JWKS "x" member.
	var published struct {
		Keys []struct {
			X string `json:"x"`
		} `json:"keys"`
	}
	if err := json.Unmarshal([]byte(raw), &published); err != nil {
		t.Fatal(err)
	}
	rawPub, err := base64.RawURLEncoding.DecodeString(published.Keys[0].X)
	if err != nil || len(rawPub) != ed25519.PublicKeySize {
		t.Fatalf("JWKS x = %q (%v)", published.Keys[0].X, err)
	}
	der, err := x509.MarshalPKIXPublicKey(ed25519.PublicKey(rawPub))
	if err != nil {
		t.Fatal(err)
	}
	pemPub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})

	header := map[string]any{"typ": "at+jwt", "kid": kid}
	good := validClaims(t, p, s.Clock.Now())

	// The control: the same claims, signed with the real key, pass.
	s.protectedWith(t, forge(t, jwt.SigningMethodEdDSA, priv, header, good), "control token signed with the real key")

	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name  string
		token string
	}{
		{"HS256 keyed with the raw public key", forge(t, jwt.SigningMethodHS256, rawPub, header, good)},
		{"HS256 keyed with the DER public key", forge(t, jwt.SigningMethodHS256, der, header, good)},
		{"HS256 keyed with the PEM public key", forge(t, jwt.SigningMethodHS256, pemPub, header, good)},
		{"HS256 keyed with the JWKS", forge(t, jwt.SigningMethodHS256, []byte(raw), header, good)},
		{"HS512 keyed with the raw public key", forge(t, jwt.SigningMethodHS512, rawPub, header, good)},
		{"EdDSA signed with another key under our kid", forge(t, jwt.SigningMethodEdDSA, otherKey, header, good)},
		{"alg none under our kid", forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, header, good)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.post(t, tc.token, `{ protected }`, nil).wantError(t, "UNAUTHENTICATED", "TOKEN_INVALID")
		})
	}
}

// Rotation: the new key signs, the previous key still verifies the tokens it
// signed until it is dropped from the configuration, and the JWKS lists the
// new key first so that clients pick it up ahead of its tokens.
func TestEdDSA_KeyRotation(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		dir := t.TempDir()
		oldKey, oldFile := writeEd25519Key(t, dir, "old.pem")
		newKey, newFile := writeEd25519Key(t, dir, "new.pem")
		olderKey, olderFile := writeEd25519Key(t, dir, "older.pem")
		oldPubFile := writeEd25519PublicKey(t, dir, "old.pub.pem", oldKey.Public().(ed25519.PublicKey))
		oldKID, newKID, olderKID := joseKID(t, oldKey.Public().(ed25519.PublicKey)), joseKID(t, newKey.Public().(ed25519.PublicKey)), joseKID(t, olderKey.Public().(ed25519.PublicKey))

		a := newTestServer(t, url, map[string]string{"JWT_ALG": "EdDSA", "JWT_PRIVATE_KEY_FILE": oldFile})
		t1 := a.register(t, "alice", "correct horse").AccessToken
		if got := kidOf(t, t1); got != oldKID {
			t.Fatalf("kid of a token signed with old.pem = %q, want %q", got, oldKID)
		}

		for _, tc := range []struct {
			name     string
			previous string
			wantKIDs []string
		}{
			{"previous key as PKCS#8 private key", oldFile, []string{newKID, oldKID}},
			{"previous key as PKIX public key", oldPubFile, []string{newKID, oldKID}},
			{"two previous keys", olderFile + ", " + oldPubFile, []string{newKID, olderKID, oldKID}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				b := newTestServer(t, url, map[string]string{"JWT_ALG": "EdDSA", "JWT_PRIVATE_KEY_FILE": newFile, "JWT_PREVIOUS_KEY_FILES": tc.previous})
				b.protectedWith(t, t1, "a token of the previous key")
				var p authPayload
				b.login(t, "", "alice", "correct horse").field(t, "login", &p)
				if got := kidOf(t, p.AccessToken); got != newKID {
					t.Errorf("kid of a token issued after the rotation = %q, want the new key's %q", got, newKID)
				}
				b.protectedWith(t, p.AccessToken, "a token of the new key")

				set, raw := b.fetchJWKS(t)
				var got []string
				for _, k := range set.Keys {
					got = append(got, k.KeyID)
				}
				if len(got) != len(tc.wantKIDs) {
					t.Fatalf("JWKS kids = %q, want %q: %s", got, tc.wantKIDs, raw)
				}
				for i := range got {
					if got[i] != tc.wantKIDs[i] {
						t.Fatalf("JWKS kids = %q, want %q (signing key first): %s", got, tc.wantKIDs, raw)
					}
				}
			})
		}

		// Once the previous key is dropped, its tokens are refused.
		c := newTestServer(t, url, map[string]string{"JWT_ALG": "EdDSA", "JWT_PRIVATE_KEY_FILE": newFile})
		c.post(t, t1, `{ protected }`, nil).wantError(t, "UNAUTHENTICATED", "TOKEN_INVALID")
		if set, raw := c.fetchJWKS(t); len(set.Keys) != 1 || set.Keys[0].KeyID != newKID {
			t.Errorf("JWKS without a previous key = %s, want only %s", raw, newKID)
		}
	})
}
