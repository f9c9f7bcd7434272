package api_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/pquerna/otp"

	"tollgate/db/dbtest"
)

// The name an authenticator app shows is TOTP_ISSUER, never JWT_ISSUER: with
// JWT_ISSUER a URL, the app shows "Tollgate" (not "https"), and a URL-like
// TOTP_ISSUER comes back whole from both the label and the issuer parameter.
// The secret in the URI is the one the server checks codes against.
func TestMFA_IssuerIsTheNameAnAppShows(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dbURL string) {
		for _, tc := range []struct{ totpIssuer, want, user string }{
			{"", "Tollgate", "alice.smith_1"},
			{"auth.example.com/sso & Co", "auth.example.com/sso & Co", "bob-2"},
		} {
			env := map[string]string{"JWT_ISSUER": "https://auth.example.com"}
			if tc.totpIssuer != "" {
				env["TOTP_ISSUER"] = tc.totpIssuer
			}
			s := newTestServer(t, dbURL, env)
			reg := s.register(t, tc.user, "correct horse")
			e := s.enroll(t, reg.AccessToken)

			key, err := otp.NewKeyFromURL(e.URI)
			if err != nil {
				t.Fatalf("parse %q: %v", e.URI, err)
			}
			if key.Issuer() != tc.want || key.AccountName() != tc.user {
				t.Errorf("%s: an app shows %q / %q, want %q / %q", e.URI, key.Issuer(), key.AccountName(), tc.want, tc.user)
			}
			u, err := url.Parse(e.URI)
			if err != nil {
				t.Fatal(err)
			}
			if label := strings.TrimPrefix(u.Path, "/"); label != tc.want+":"+tc.user {
				t.Errorf("%s: label %q, want %q", e.URI, label, tc.want+":"+tc.user)
			}
			if got := u.Query().Get("issuer"); got != tc.want {
				t.Errorf("%s: issuer parameter %q, want %q", e.URI, got, tc.want)
			}
			if key.Secret() != e.Secret {
				t.Errorf("the URI's secret %q is not the enrollment's %q", key.Secret(), e.Secret)
			}
			up := s.mustVerifyTotp(t, reg.AccessToken, e.Factor.ID, code(t, key.Secret(), s.Clock.Now()))
			if up.AAL != "AAL2" {
				t.Errorf("a code from the URI's secret: aal %q, want AAL2", up.AAL)
			}
			// The tokens still carry JWT_ISSUER: nothing about them changed.
			if iss := jwtClaims(t, up.AccessToken)["iss"]; iss != "https://auth.example.com" {
				t.Errorf("iss = %v, want https://auth.example.com", iss)
			}
		}
	})
}
