package auth

import (
	"net/url"
	"strings"
	"testing"

	"github.com/pquerna/otp"
)

// TestTOTPKey_LabelIsEscaped reads each enrollment URI back as an
// authenticator app does (pquerna/otp's parser, and the label and issuer
// parameter on their own): the names shown are exactly the ones given,
// whatever they hold. Usernames are plain ASCII today; the account names
// here are what the Key Uri Format must carry for any account name.
func TestTOTPKey_LabelIsEscaped(t *testing.T) {
	for _, tc := range []struct{ issuer, account string }{
		{"Tollgate", "alice"},
		{"auth.example.com/sso?x=1&y=2#top", "alice"},
		{"Example Co", "alice smith"},
		{"50% + more", "a+b@example.com"},
		{"Ünïcødé GmbH", "élodie/ops?#&="},
		{"Tollgate", "odd:name"},
	} {
		key, err := newTOTPKey(tc.issuer, tc.account)
		if err != nil {
			t.Fatalf("newTOTPKey(%q, %q): %v", tc.issuer, tc.account, err)
		}
		uri := key.URL()
		parsed, err := otp.NewKeyFromURL(uri)
		if err != nil {
			t.Fatalf("parse %q: %v", uri, err)
		}
		if got := parsed.Issuer(); got != tc.issuer {
			t.Errorf("%s: issuer %q, want %q", uri, got, tc.issuer)
		}
		if got := parsed.AccountName(); got != tc.account {
			t.Errorf("%s: account name %q, want %q", uri, got, tc.account)
		}
		// An app may read the issuer from the label or from the parameter:
		// both must say the same.
		u, err := url.Parse(uri)
		if err != nil {
			t.Fatal(err)
		}
		labelIssuer, labelAccount, ok := strings.Cut(strings.TrimPrefix(u.Path, "/"), ":")
		if !ok || labelIssuer != tc.issuer || labelAccount != tc.account {
			t.Errorf("%s: label %q:%q, want %q:%q", uri, labelIssuer, labelAccount, tc.issuer, tc.account)
		}
		if got := u.Query().Get("issuer"); got != tc.issuer {
			t.Errorf("%s: issuer parameter %q, want %q", uri, got, tc.issuer)
		}
		// The raw label holds one ":" (the separator), and no "+" or space
		// that an app could read either way.
		rawLabel := strings.TrimPrefix(strings.SplitN(uri, "?", 2)[0], "otpauth://totp/")
		if strings.Count(rawLabel, ":") != 1 || strings.ContainsAny(rawLabel, "+ /?#&") {
			t.Errorf("raw label %q: want exactly one \":\" and every other reserved character escaped", rawLabel)
		}
		if parsed.Secret() == "" || parsed.Period() != 30 || parsed.Digits() != otp.DigitsSix || parsed.Algorithm() != otp.AlgorithmSHA1 {
			t.Errorf("%s: secret %q, period %d, digits %v, algorithm %v", uri, parsed.Secret(), parsed.Period(), parsed.Digits(), parsed.Algorithm())
		}
	}
}
