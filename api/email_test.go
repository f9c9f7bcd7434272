package api_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	netmail "net/mail"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate/db/dbtest"
	"tollgate/mail/mailtest"
)

// emailServer is a test server whose mail goes over SMTP to a real server
// in the test's process, where the tests read it as a mailbox would.
type emailServer struct {
	*testServer
	smtp *mailtest.Server
}

func newEmailServer(t *testing.T, dbURL string, env map[string]string) *emailServer {
	t.Helper()
	smtp := mailtest.NewServer(t)
	host, port := smtp.Host()
	vars := map[string]string{"SMTP_URL": fmt.Sprintf("smtp://%s:%d", host, port)}
	for k, v := range env {
		vars[k] = v
	}
	return &emailServer{testServer: newTestServer(t, dbURL, vars), smtp: smtp}
}

// receivedMail is a delivered mail, its parts decoded.
type receivedMail struct {
	To, Subject, Text, HTML string
}

// subjects tell the kinds of mail apart in a mailbox.
var subjects = map[string]string{
	"verify_email":   "Confirm your email address",
	"password_reset": "Reset your password",
	"email_changed":  "Your email address is being changed",
}

// delivered waits until the outbox holds nothing undelivered (the reset
// mails that requestPasswordReset queues after answering included).
func (s *emailServer) delivered(t *testing.T) {
	t.Helper()
	s.App.Auth.WaitMail()
	deadline := time.Now().Add(20 * time.Second)
	for s.count(t, `SELECT count(*) FROM mail_outbox WHERE sent_at IS NULL AND failed_at IS NULL`) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the outbox was not delivered in 20 s")
		}
		s.App.Mail.Notify()
		time.Sleep(5 * time.Millisecond) // real SMTP over loopback: no clock to move
	}
}

// mails returns the mails of kind delivered to recipient, oldest first.
func (s *emailServer) mails(t *testing.T, kind, recipient string) []receivedMail {
	t.Helper()
	s.delivered(t)
	var out []receivedMail
	for _, m := range s.smtp.Messages() {
		if m.To != recipient || m.Subject != subjects[kind] {
			continue
		}
		out = append(out, decodeMail(t, m))
	}
	return out
}

// decodeMail reads a multipart/alternative message with the standard
// library's MIME readers.
func decodeMail(t *testing.T, m mailtest.Received) receivedMail {
	t.Helper()
	msg, err := netmail.ReadMessage(bytes.NewReader(m.Raw))
	if err != nil {
		t.Fatal(err)
	}
	r := receivedMail{To: m.To, Subject: m.Subject}
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mediaType, "multipart/") {
		t.Fatalf("not multipart: %q, %v", msg.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var body io.Reader = part
		switch strings.ToLower(part.Header.Get("Content-Transfer-Encoding")) {
		case "quoted-printable":
			body = quotedprintable.NewReader(part)
		case "base64":
			body = base64.NewDecoder(base64.StdEncoding, part)
		}
		b, err := io.ReadAll(body)
		if err != nil {
			t.Fatal(err)
		}
		ct, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		switch ct {
		case "text/plain":
			r.Text = string(b)
		case "text/html":
			r.HTML = string(b)
		}
	}
	if r.Text == "" || r.HTML == "" {
		t.Fatalf("a part is missing: %s", m.Raw)
	}
	return r
}

var linkToken = regexp.MustCompile(`/(verify-email|reset-password)\?token=([A-Za-z0-9_-]+)`)

// lastToken is the token of the newest mail of kind to recipient, read from
// its link, after checking that the text and the HTML carry the same link
// and the text the token to paste.
func (s *emailServer) lastToken(t *testing.T, kind, recipient string) string {
	t.Helper()
	ms := s.mails(t, kind, recipient)
	if len(ms) == 0 {
		t.Fatalf("no %s mail to %s; log:\n%s", kind, recipient, s.Log.String())
	}
	m := ms[len(ms)-1]
	found := linkToken.FindStringSubmatch(m.Text)
	if found == nil {
		t.Fatalf("no link in the %s mail: %s", kind, m.Text)
	}
	token := found[2]
	if !strings.Contains(m.HTML, found[0]) || strings.Count(m.Text, token) != 2 {
		t.Fatalf("the %s mail's HTML or pasteable code does not match its link: %s\n%s", kind, m.Text, m.HTML)
	}
	return token
}

// registerWithEmail signs up username with email and returns the payload.
func (s *testServer) registerWithEmail(t *testing.T, username, email string) authPayload {
	t.Helper()
	var p authPayload
	s.post(t, "", `mutation($u: String!, $e: String) { register(username: $u, password: "correct horse", email: $e) { `+payloadFields+` } }`,
		map[string]any{"u": username, "e": email}).field(t, "register", &p)
	return p
}

// verifiedUser signs up username with a verified email.
func (s *emailServer) verifiedUser(t *testing.T, username, email string) authPayload {
	t.Helper()
	p := s.registerWithEmail(t, username, email)
	s.mustVerifyEmail(t, s.lastToken(t, "verify_email", email))
	return p
}

func (s *testServer) verifyEmail(t *testing.T, token string) gqlResponse {
	t.Helper()
	return s.post(t, "", `mutation($t: String!) { verifyEmail(token: $t) }`, map[string]any{"t": token})
}

func (s *testServer) mustVerifyEmail(t *testing.T, token string) {
	t.Helper()
	var ok bool
	s.verifyEmail(t, token).field(t, "verifyEmail", &ok)
	if !ok {
		t.Fatal("verifyEmail answered false")
	}
}

func (s *testServer) requestReset(t *testing.T, email string) gqlResponse {
	t.Helper()
	return s.post(t, "", `mutation($e: String!) { requestPasswordReset(email: $e) }`, map[string]any{"e": email})
}

func (s *testServer) resetPassword(t *testing.T, token, password string) gqlResponse {
	t.Helper()
	return s.post(t, "", `mutation($t: String!, $p: String!) { resetPassword(token: $t, newPassword: $p) { `+mfaPayloadFields+` } }`,
		map[string]any{"t": token, "p": password})
}

type emailMe struct {
	Email         *string `json:"email"`
	EmailVerified bool    `json:"emailVerified"`
}

func (s *testServer) emailOf(t *testing.T, token string) emailMe {
	t.Helper()
	var me emailMe
	s.post(t, token, `{ me { email emailVerified } }`, nil).field(t, "me", &me)
	return me
}

func TestEmail_RegisterVerifyAndLoginByAddress(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newEmailServer(t, url, nil)
		p := s.registerWithEmail(t, "alice", "Alice@Example.com")
		if me := s.emailOf(t, p.AccessToken); me.Email == nil || *me.Email != "Alice@Example.com" || me.EmailVerified {
			t.Fatalf("before verification: %+v", me)
		}
		// An unverified address is no login name.
		s.login(t, "", "alice@example.com", "correct horse").wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")

		mails := s.mails(t, "verify_email", "Alice@Example.com")
		if len(mails) != 1 || mails[0].Subject == "" || !strings.Contains(mails[0].Text, "http://localhost:8080/verify-email?token=") {
			t.Fatalf("verification mails: %+v", mails)
		}
		token := s.lastToken(t, "verify_email", "Alice@Example.com")
		if s.count(t, `SELECT count(*) FROM email_tokens WHERE token_hash = ?`, token) != 0 ||
			s.count(t, `SELECT count(*) FROM mail_outbox WHERE body_text LIKE ?`, "%"+token+"%") != 0 {
			t.Fatal("the token is stored as it was mailed")
		}
		s.mustVerifyEmail(t, token)
		if me := s.emailOf(t, p.AccessToken); !me.EmailVerified {
			t.Fatalf("after verification: %+v", me)
		}
		// Single use.
		e := s.verifyEmail(t, token).wantError(t, "BAD_USER_INPUT", "INVALID_TOKEN")
		if e.Extensions["field"] != "token" {
			t.Fatalf("field %v, want token", e.Extensions["field"])
		}
		// The verified address signs in, in any letter case.
		var in authPayload
		s.login(t, "", "ALICE@example.COM", "correct horse").field(t, "login", &in)
		if in.User.Username != "alice" {
			t.Fatalf("logged in as %q", in.User.Username)
		}
	})
}

func TestEmail_BadAddressesAreInvalidInput(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newEmailServer(t, url, map[string]string{"MAILS_PER_IP_PER_HOUR": "1000"})
		fresh := s.register(t, "owner", "correct horse")
		long := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 62) + ".com"
		for name, addr := range map[string]string{
			"empty":        "",
			"no at":        "alice.example.com",
			"two ats":      "a@b@example.com",
			"display name": "Alice <alice@example.com>",
			"angle only":   "<alice@example.com>",
			"spaces":       " alice@example.com",
			"comment":      "alice@example.com (work)",
			"line break":   "alice@example.com\r\nBcc: victim@example.com",
			"nul":          "alice\x00@example.com",
			"over 254":     long,
			"two":          "a@example.com, b@example.com",
		} {
			t.Run(name, func(t *testing.T) {
				check := func(r gqlResponse, field string) {
					t.Helper()
					e := r.wantError(t, "BAD_USER_INPUT", "INVALID_INPUT")
					if e.Extensions["field"] != field {
						t.Fatalf("field %v, want %s: %s", e.Extensions["field"], field, r.Raw)
					}
				}
				check(s.post(t, "", `mutation($e: String) { register(username: "bob", password: "correct horse", email: $e) { accessToken } }`,
					map[string]any{"e": addr}), "email")
				check(s.post(t, fresh.AccessToken, `mutation($e: String!) { changeEmail(newEmail: $e) }`, map[string]any{"e": addr}), "newEmail")
				check(s.requestReset(t, addr), "email")
			})
		}
		if len(long) <= 254 {
			t.Fatalf("the long address has %d bytes", len(long))
		}
		if n := s.count(t, `SELECT count(*) FROM mail_outbox`); n != 0 || s.smtp.RcptCount() != 0 {
			t.Fatalf("%d mails queued for bad addresses", n)
		}
		if n := s.count(t, `SELECT count(*) FROM users WHERE username = 'bob'`); n != 0 {
			t.Fatal("a user was created with a bad address")
		}
		// What net/mail accepts unchanged is accepted, a non-ASCII address
		// too; a quoted local part comes back unquoted, and is refused.
		s.post(t, "", `mutation { register(username: "bob", password: "correct horse", email: "\"bob smith\"@example.com") { accessToken } }`, nil).
			wantError(t, "BAD_USER_INPUT", "INVALID_INPUT")
		s.registerWithEmail(t, "carol", "o'brien+tag@example.com")
		s.registerWithEmail(t, "dora", "dörte@exämple.de")
	})
}

func TestEmail_TakenWithoutRegardToCase(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newEmailServer(t, url, nil)
		s.registerWithEmail(t, "alice", "alice@example.com")
		// Unverified, it is still held; and non-ASCII letters fold too.
		r := s.post(t, "", `mutation { register(username: "bob", password: "correct horse", email: "ALICE@example.com") { accessToken } }`, nil)
		if e := r.wantError(t, "BAD_USER_INPUT", "EMAIL_TAKEN"); e.Extensions["field"] != "email" {
			t.Fatalf("field %v", e.Extensions["field"])
		}
		s.registerWithEmail(t, "dora", "DÖRTE@example.de")
		s.post(t, "", `mutation { register(username: "erin", password: "correct horse", email: "dörte@example.de") { accessToken } }`, nil).
			wantError(t, "BAD_USER_INPUT", "EMAIL_TAKEN")
		if s.count(t, `SELECT count(*) FROM users WHERE username IN ('bob', 'erin')`) != 0 {
			t.Fatal("a refused sign-up left a user")
		}
		bob := s.register(t, "bob", "correct horse")
		r = s.post(t, bob.AccessToken, `mutation { changeEmail(newEmail: "Alice@Example.com") }`, nil)
		if e := r.wantError(t, "BAD_USER_INPUT", "EMAIL_TAKEN"); e.Extensions["field"] != "newEmail" {
			t.Fatalf("field %v", e.Extensions["field"])
		}
		if len(s.mails(t, "verify_email", "Alice@Example.com")) != 0 {
			t.Fatal("a verification was mailed to a taken address")
		}
	})
}

func TestEmail_Required(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newEmailServer(t, url, map[string]string{"EMAIL_REQUIRED": "true"})
		r := s.post(t, "", `mutation { register(username: "alice", password: "correct horse") { accessToken } }`, nil)
		if e := r.wantError(t, "BAD_USER_INPUT", "INVALID_INPUT"); e.Extensions["field"] != "email" {
			t.Fatalf("field %v", e.Extensions["field"])
		}
		s.registerWithEmail(t, "alice", "alice@example.com")
	})
}

func TestEmail_ChangeEmailVerifiesTheNewAddressFirst(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newEmailServer(t, url, nil)
		p := s.verifiedUser(t, "alice", "old@example.com")
		// changeEmail needs a fresh token.
		var refreshed authPayload
		s.refresh(t, *p.RefreshToken).field(t, "refreshToken", &refreshed)
		s.post(t, refreshed.AccessToken, `mutation { changeEmail(newEmail: "new@example.com") }`, nil).
			wantError(t, "FORBIDDEN", "FRESH_TOKEN_REQUIRED")

		var ok bool
		s.post(t, p.AccessToken, `mutation { changeEmail(newEmail: "new@example.com") }`, nil).field(t, "changeEmail", &ok)
		notices := s.mails(t, "email_changed", "old@example.com")
		if len(notices) != 1 || !strings.Contains(notices[0].Text, "new@example.com") {
			t.Fatalf("notices to the old address: %+v", notices)
		}
		// Until the new address is verified the old one stays, and signs in.
		if me := s.emailOf(t, p.AccessToken); *me.Email != "old@example.com" || !me.EmailVerified {
			t.Fatalf("before verification: %+v", me)
		}
		s.login(t, "", "old@example.com", "correct horse").field(t, "login", &authPayload{})
		s.login(t, "", "new@example.com", "correct horse").wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")

		s.mustVerifyEmail(t, s.lastToken(t, "verify_email", "new@example.com"))
		if me := s.emailOf(t, p.AccessToken); *me.Email != "new@example.com" || !me.EmailVerified {
			t.Fatalf("after verification: %+v", me)
		}
		s.login(t, "", "old@example.com", "correct horse").wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
		s.login(t, "", "new@example.com", "correct horse").field(t, "login", &authPayload{})
		// The old address is free for someone else now.
		s.registerWithEmail(t, "bob", "old@example.com")
	})
}

func TestEmail_NewerRequestEndsEarlierTokens(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newEmailServer(t, url, nil)
		p := s.registerWithEmail(t, "alice", "alice@example.com")
		first := s.lastToken(t, "verify_email", "alice@example.com")
		s.Clock.Advance(time.Second)
		var ok bool
		s.post(t, p.AccessToken, `mutation { requestEmailVerification }`, nil).field(t, "requestEmailVerification", &ok)
		second := s.lastToken(t, "verify_email", "alice@example.com")
		if first == second {
			t.Fatal("the same token was mailed twice")
		}
		s.verifyEmail(t, first).wantError(t, "BAD_USER_INPUT", "INVALID_TOKEN")
		s.mustVerifyEmail(t, second)
		r := s.post(t, p.AccessToken, `mutation { requestEmailVerification }`, nil)
		if e := r.wantError(t, "BAD_USER_INPUT", "INVALID_INPUT"); e.Extensions["field"] != "email" {
			t.Fatalf("a verified address: %s", r.Raw)
		}
	})
}

func TestEmail_VerificationExpires(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newEmailServer(t, url, nil)
		s.registerWithEmail(t, "alice", "alice@example.com")
		token := s.lastToken(t, "verify_email", "alice@example.com")
		s.Clock.Advance(24*time.Hour + time.Second)
		s.verifyEmail(t, token).wantError(t, "BAD_USER_INPUT", "INVALID_TOKEN")
		for _, bad := range []string{"", "nope", strings.Repeat("A", 43), token + "=", " " + token} {
			s.verifyEmail(t, bad).wantError(t, "BAD_USER_INPUT", "INVALID_TOKEN")
		}
	})
}

func TestEmail_VisibleToOwnerAndAdminOnly(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newEmailServer(t, url, map[string]string{"ADMIN_USERNAME": "root", "ADMIN_PASSWORD": "admin password"})
		admin := s.mustLogin(t, "root", "admin password")
		alice := s.registerWithEmail(t, "alice", "alice@example.com")
		if alice.User.ID == "" {
			t.Fatal("no user in the payload")
		}
		var payload struct {
			User emailMe `json:"user"`
		}
		s.post(t, "", `mutation { login(username: "alice", password: "correct horse") { user { email emailVerified } } }`, nil).field(t, "login", &payload)
		if payload.User.Email == nil || *payload.User.Email != "alice@example.com" {
			t.Fatalf("the payload of one's own login: %+v", payload.User)
		}
		// A note's owner, seen by an ADMIN: the address shows.
		var n struct {
			ID string `json:"id"`
		}
		s.post(t, alice.AccessToken, `mutation { createNote(title: "t", body: "b") { id } }`, nil).field(t, "createNote", &n)
		var seen struct {
			Owner emailMe `json:"owner"`
		}
		s.post(t, admin.AccessToken, `query($id: ID!) { note(id: $id) { owner { email } } }`, map[string]any{"id": n.ID}).field(t, "note", &seen)
		if seen.Owner.Email == nil || *seen.Owner.Email != "alice@example.com" {
			t.Fatalf("an ADMIN sees %+v", seen.Owner)
		}
		var page struct {
			Edges []struct {
				Node struct {
					Username string  `json:"username"`
					Email    *string `json:"email"`
				} `json:"node"`
			} `json:"edges"`
		}
		s.post(t, admin.AccessToken, `{ users(first: 10) { edges { node { username email } } } }`, nil).field(t, "users", &page)
		for _, e := range page.Edges {
			if e.Node.Username == "alice" && (e.Node.Email == nil || *e.Node.Email != "alice@example.com") {
				t.Fatalf("users, as an ADMIN: %+v", e.Node)
			}
		}
	})
}

func TestPasswordReset_WholeFlow(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newEmailServer(t, url, nil)
		p := s.verifiedUser(t, "alice", "alice@example.com")
		other := s.login(t, "", "alice", "correct horse")
		var otherSession authPayload
		other.field(t, "login", &otherSession)

		var ok bool
		s.requestReset(t, "ALICE@example.com").field(t, "requestPasswordReset", &ok)
		if !ok {
			t.Fatal("requestPasswordReset answered false")
		}
		token := s.lastToken(t, "password_reset", "alice@example.com")

		// The password rules first: a weak password spends nothing.
		e := s.resetPassword(t, token, "short").wantError(t, "BAD_USER_INPUT", "WEAK_PASSWORD")
		if e.Extensions["field"] != "newPassword" {
			t.Fatalf("field %v", e.Extensions["field"])
		}
		var reset mfaPayload
		s.resetPassword(t, token, "a brand new password").field(t, "resetPassword", &reset)
		if reset.User.Username != "alice" || reset.AccessToken == "" || reset.RefreshToken == nil || reset.MFARequired {
			t.Fatalf("resetPassword: %+v", reset)
		}
		wantClaims(t, reset.AccessToken, "aal1", []string{"pwd"}, false, true)

		// Every earlier session is signed out, refresh tokens included.
		for _, rt := range []string{*p.RefreshToken, *otherSession.RefreshToken} {
			s.post(t, "", `mutation($t: String) { refreshToken(token: $t) { accessToken } }`, map[string]any{"t": rt}).
				wantError(t, "UNAUTHENTICATED", "REFRESH_TOKEN_INVALID")
		}
		s.post(t, p.AccessToken, `{ protected }`, nil).wantError(t, "UNAUTHENTICATED", "TOKEN_REVOKED")
		var prot string
		s.post(t, reset.AccessToken, `{ protected }`, nil).field(t, "protected", &prot)

		s.login(t, "", "alice", "correct horse").wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
		s.login(t, "", "alice@example.com", "a brand new password").field(t, "login", &authPayload{})
		s.resetPassword(t, token, "yet another password").wantError(t, "BAD_USER_INPUT", "INVALID_TOKEN")
	})
}

func TestPasswordReset_TokensEnd(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newEmailServer(t, url, nil)
		p := s.verifiedUser(t, "alice", "alice@example.com")

		// Expired after PASSWORD_RESET_TTL.
		s.requestReset(t, "alice@example.com")
		expired := s.lastToken(t, "password_reset", "alice@example.com")
		s.Clock.Advance(30*time.Minute + time.Second)
		s.resetPassword(t, expired, "a brand new password").wantError(t, "BAD_USER_INPUT", "INVALID_TOKEN")

		// A newer request ends the older token.
		s.Clock.Advance(time.Hour) // a new throttle window
		s.requestReset(t, "alice@example.com")
		older := s.lastToken(t, "password_reset", "alice@example.com")
		s.Clock.Advance(time.Second)
		s.requestReset(t, "alice@example.com")
		newer := s.lastToken(t, "password_reset", "alice@example.com")
		s.resetPassword(t, older, "a brand new password").wantError(t, "BAD_USER_INPUT", "INVALID_TOKEN")

		// A password change ends every reset token.
		fresh := s.mustLogin(t, "alice", "correct horse")
		var ok bool
		s.post(t, fresh.AccessToken, `mutation { changePassword(currentPassword: "correct horse", newPassword: "changed password") }`, nil).
			field(t, "changePassword", &ok)
		s.resetPassword(t, newer, "a brand new password").wantError(t, "BAD_USER_INPUT", "INVALID_TOKEN")
		_ = p
	})
}

func TestPasswordReset_SameAnswerAndMailOnlyForAVerifiedAddress(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newEmailServer(t, url, nil)
		s.verifiedUser(t, "vera", "vera@example.com")
		s.registerWithEmail(t, "uma", "uma@example.com") // unverified
		var answers []string
		for _, addr := range []string{"nobody@example.com", "uma@example.com", "vera@example.com"} {
			r := s.requestReset(t, addr)
			answers = append(answers, r.Raw)
		}
		s.delivered(t)
		if answers[0] != answers[1] || answers[1] != answers[2] || answers[0] != `{"data":{"requestPasswordReset":true}}` {
			t.Fatalf("answers differ: %q", answers)
		}
		if n := s.count(t, `SELECT count(*) FROM mail_outbox WHERE kind = 'password_reset'`); n != 1 || len(s.smtp.Messages()) != 3 {
			t.Fatalf("%d reset mails, want 1", n)
		}
		if len(s.mails(t, "password_reset", "vera@example.com")) != 1 {
			t.Fatal("the verified address got no reset")
		}
	})
}

func TestPasswordReset_ConcurrentUseSucceedsOnce(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newEmailServer(t, url, nil)
		s.verifiedUser(t, "alice", "alice@example.com")
		s.requestReset(t, "alice@example.com")
		token := s.lastToken(t, "password_reset", "alice@example.com")
		const n = 4
		var wg sync.WaitGroup
		results := make([]gqlResponse, n)
		for i := range n {
			wg.Go(func() { results[i] = s.resetPassword(t, token, "a brand new password") })
		}
		wg.Wait()
		won := 0
		for _, r := range results {
			if len(r.Errors) == 0 {
				won++
				continue
			}
			r.wantError(t, "BAD_USER_INPUT", "INVALID_TOKEN")
		}
		if won != 1 {
			t.Fatalf("%d of %d concurrent resets succeeded, want exactly 1", won, n)
		}
		// Exactly one new session: the winner's.
		if live := s.count(t, `SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id
			WHERE u.username = 'alice' AND s.created_at > u.sessions_revoked_at`); live != 1 {
			t.Fatalf("%d sessions after the cutoff, want 1", live)
		}
	})
}

func TestPasswordReset_SecondFactorStillNeeded(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newEmailServer(t, url, nil)
		p, e := s.enrolled(t, "alice")
		var ok bool
		s.post(t, p.AccessToken, `mutation { changeEmail(newEmail: "alice@example.com") }`, nil).field(t, "changeEmail", &ok)
		s.mustVerifyEmail(t, s.lastToken(t, "verify_email", "alice@example.com"))
		s.requestReset(t, "alice@example.com")
		var reset mfaPayload
		s.resetPassword(t, s.lastToken(t, "password_reset", "alice@example.com"), "a brand new password").field(t, "resetPassword", &reset)
		if !reset.MFARequired || reset.AAL != "AAL1" {
			t.Fatalf("a user with a factor after a reset: %+v", reset)
		}
		s.post(t, reset.AccessToken, `{ protected }`, nil).wantError(t, "FORBIDDEN", "MFA_REQUIRED")
		s.Clock.Advance(30 * time.Second)
		s.mustVerifyTotp(t, reset.AccessToken, e.Factor.ID, code(t, e.Secret, s.Clock.Now()))
	})
}

func TestEmail_MailThrottles(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newEmailServer(t, url, map[string]string{"MAILS_PER_ADDRESS_PER_HOUR": "3", "MAILS_PER_IP_PER_HOUR": "5"})
		s.verifiedUser(t, "alice", "alice@example.com") // one mail to the address
		s.Clock.Advance(time.Hour)
		for range 5 {
			var ok bool
			s.requestReset(t, "alice@example.com").field(t, "requestPasswordReset", &ok)
			if !ok {
				t.Fatal("a throttled requestPasswordReset answered false")
			}
		}
		if n := len(s.mails(t, "password_reset", "alice@example.com")); n != 3 {
			t.Fatalf("%d reset mails, want MAILS_PER_ADDRESS_PER_HOUR = 3", n)
		}
		// The address's limit is reached: a verification mail to it is RATE_LIMITED.
		bob := s.register(t, "bob", "correct horse")
		r := s.post(t, bob.AccessToken, `mutation { changeEmail(newEmail: "ALICE@example.com") }`, nil)
		if e := r.wantError(t, "RATE_LIMITED", ""); e.Extensions["retryAfter"] == nil {
			t.Fatalf("no retryAfter: %s", r.Raw)
		}
		// The client address's limit: the 3 resets and 2 sign-ups make 5
		// (refused attempts are taken back), and the next is refused.
		s.registerWithEmail(t, "carol", "carol@example.com")
		s.registerWithEmail(t, "dora", "dora@example.com")
		s.post(t, "", `mutation { register(username: "erin", password: "correct horse", email: "erin@example.com") { accessToken } }`, nil).
			wantError(t, "RATE_LIMITED", "")
	})
}

func TestEmail_MailLinkURL(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newEmailServer(t, url, map[string]string{"MAIL_LINK_URL": "https://app.example.com/account/"})
		s.registerWithEmail(t, "alice", "alice@example.com")
		m := s.mails(t, "verify_email", "alice@example.com")[0]
		if !strings.Contains(m.Text, "https://app.example.com/account/verify-email?token=") {
			t.Fatalf("link: %s", m.Text)
		}
	})
}

func TestEmail_RequestLogHoldsNoTokenOrAddress(t *testing.T) {
	s := newEmailServer(t, dbtest.URL(t, "sqlite"), nil)
	s.verifiedUser(t, "alice", "alice@example.com")
	s.requestReset(t, "alice@example.com")
	token := s.lastToken(t, "password_reset", "alice@example.com")
	for _, page := range []string{"/verify-email?token=" + token, "/reset-password?token=" + token} {
		if r := s.send(t, http.MethodGet, page, http.Header{}, ""); r.Status != http.StatusOK {
			t.Fatalf("GET %s: %d", page, r.Status)
		}
	}
	s.resetPassword(t, token, "a brand new password").field(t, "resetPassword", &mfaPayload{})
	log := s.Log.String()
	if !strings.Contains(log, `"path":"/reset-password"`) {
		t.Fatalf("the page requests were not logged: %s", log)
	}
	for _, secret := range []string{token, "alice@example.com", "token="} {
		if strings.Contains(log, secret) {
			t.Fatalf("the log holds %q:\n%s", secret, log)
		}
	}
}

func TestEmail_PagesFromTheBinary(t *testing.T) {
	s := newEmailServer(t, dbtest.URL(t, "sqlite"), map[string]string{"APP_ENV": "production", "MAIL_TRANSPORT": "log"})
	for _, page := range []string{"/verify-email", "/reset-password"} {
		r := s.send(t, http.MethodGet, page+"?token=x", http.Header{}, "")
		csp := r.Header.Get("Content-Security-Policy")
		if r.Status != http.StatusOK || !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "connect-src 'self'") ||
			!strings.Contains(csp, "default-src 'none'") || r.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("GET %s: %d, CSP %q, Cache-Control %q", page, r.Status, csp, r.Header.Get("Cache-Control"))
		}
		for _, src := range regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(r.Raw, -1) {
			if !strings.HasPrefix(src[1], "/account/") {
				t.Fatalf("%s loads %s", page, src[1])
			}
			if a := s.send(t, http.MethodGet, src[1], http.Header{}, ""); a.Status != http.StatusOK {
				t.Fatalf("GET %s: %d", src[1], a.Status)
			}
		}
	}
}

func TestUserCreate_WithEmailQueuesAVerification(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dbURL string) {
		// The running server delivers what the command queued.
		s := newEmailServer(t, dbURL, nil)
		c := command{vars: map[string]string{"DATABASE_URL": dbURL, "PUBLIC_URL": "https://auth.example.com"}, stdin: "correct horse\n", now: s.Clock.Now}
		if out := c.ok(t, "user", "create", "--email", "alice@example.com", "alice"); !strings.Contains(out, "queued a verification mail") {
			t.Fatalf("user create said %q", out)
		}
		c.fails(t, 1, "user create: email is not one email address", "user", "create", "--email", "Bob <bob@example.com>", "bob")
		c.fails(t, 1, "user create: That email address is taken.", "user", "create", "--email", "ALICE@example.com", "bob")

		m := s.mails(t, "verify_email", "alice@example.com")
		if len(m) != 1 || !strings.Contains(m[0].Text, "https://auth.example.com/verify-email?token=") {
			t.Fatalf("delivered: %+v", m)
		}
		s.mustVerifyEmail(t, s.lastToken(t, "verify_email", "alice@example.com"))
		s.login(t, "", "alice@example.com", "correct horse").field(t, "login", &authPayload{})
	})
}

// One reset token aliased in one operation would buy a password hash per
// alias before the first use commits: resetPassword counts among the
// credential fields, at most one per operation.
func TestPasswordReset_AliasedInOneOperationIsRefused(t *testing.T) {
	s := newEmailServer(t, dbtest.URL(t, "sqlite"), nil)
	s.verifiedUser(t, "alice", "alice@example.com")
	s.requestReset(t, "alice@example.com")
	token := s.lastToken(t, "password_reset", "alice@example.com")
	before := s.App.Hasher.Runs()
	r := s.post(t, "", `mutation($t: String!) { a: resetPassword(token: $t, newPassword: "a brand new password") { accessToken }
		b: resetPassword(token: $t, newPassword: "a brand new password") { accessToken } }`, map[string]any{"t": token})
	r.wantError(t, "GRAPHQL_VALIDATION_FAILED", "BATCHED_AUTH")
	if runs := s.App.Hasher.Runs() - before; runs != 0 {
		t.Fatalf("%d hashes for a refused operation", runs)
	}
	s.resetPassword(t, token, "a brand new password").field(t, "resetPassword", &mfaPayload{})
}
