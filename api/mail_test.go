package api_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"tollgate/db"
	"tollgate/db/dbtest"
	"tollgate/mail"
	"tollgate/mail/mailtest"
)

// mail test sends through SMTP_URL and prints the server's answer; a
// refusal exits 1 with that answer on one line, and the password of
// SMTP_URL appears in neither.
func TestMailTest_SendsThroughSMTPAndReportsTheAnswer(t *testing.T) {
	server := mailtest.NewServer(t, mailtest.WithUsers(map[string]string{"mailer": "hunter2-smtp"}))
	host, port := server.Host()
	c := command{vars: map[string]string{
		"SMTP_URL":  fmt.Sprintf("smtp://mailer:hunter2-smtp@%s:%d", host, port),
		"MAIL_FROM": "Acme <accounts@example.com>",
	}}
	out := c.ok(t, "mail", "test", "alice@example.com")
	if !strings.Contains(out, "accepted") || !strings.Contains(out, "alice@example.com") || strings.Contains(out, "hunter2") {
		t.Errorf("output: %q", out)
	}
	got := server.Messages()
	if len(got) != 1 || got[0].To != "alice@example.com" || got[0].From != "accounts@example.com" || got[0].Subject != "Tollgate test mail" {
		t.Fatalf("arrived %+v", got)
	}

	server.Script(func(int) error { return mailtest.SMTPError(550, [3]int{5, 1, 1}, "no such user here") })
	c.fails(t, 1, "550", "mail", "test", "alice@example.com")
	_, _, err := c.run(t, "mail", "test", "alice@example.com")
	if !strings.Contains(err.Error(), "no such user here") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error: %v", err)
	}

	server.Down()
	c.fails(t, 1, "connect", "mail", "test", "alice@example.com")
}

// Without SMTP_URL the mail goes to the log (standard output here).
func TestMailTest_LogTransport(t *testing.T) {
	out := command{}.ok(t, "mail", "test", "alice@example.com")
	if !strings.Contains(out, "alice@example.com") || !strings.Contains(out, "MAIL_TRANSPORT=log") {
		t.Errorf("output: %q", out)
	}
}

func TestMailTest_UsageErrors(t *testing.T) {
	command{}.fails(t, 2, "ADDRESS", "mail", "test")
	command{}.fails(t, 2, "ADDRESS", "mail", "test", "not an address")
	command{}.fails(t, 2, "ADDRESS", "mail", "test", "Alice <alice@example.com>")
	command{}.fails(t, 2, "mail needs a command", "mail")
}

// A bad SMTP_URL stops the command with a line that names the variable
// and not the password.
func TestMailTest_BadSMTPURL(t *testing.T) {
	for _, url := range []string{"smtp://u:hunter2-smtp@host:99999", "http://u:hunter2-smtp@host", "smtp://u:hunter2-smtp@host:25/path"} {
		c := command{vars: map[string]string{"SMTP_URL": url}}
		_, code, err := c.run(t, "mail", "test", "alice@example.com")
		if code != 1 || err == nil || !strings.Contains(err.Error(), "SMTP_URL") || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: exit %d, %v", url, code, err)
		}
	}
}

// The server's sender delivers what the outbox holds as soon as Notify is
// called, and the metrics count it: outbox depth and age while it waits,
// sent or failed once done. Neither the body nor its link reaches the
// server's log, whatever the outcome.
func TestServer_DeliversTheOutboxAndCountsIt(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dbURL string) {
		smtp := mailtest.NewServer(t, mailtest.WithUsers(map[string]string{"mailer": "hunter2-smtp"}))
		host, port := smtp.Host()
		s := newTestServer(t, dbURL, map[string]string{"SMTP_URL": fmt.Sprintf("smtp://mailer:hunter2-smtp@%s:%d", host, port), "LOG_LEVEL": "debug"})
		store := db.NewStore(s.DB)
		queue := func(id string) {
			t.Helper()
			err := store.EnqueueMail(context.Background(), db.OutboxMail{ID: id, Kind: "reset_password", Recipient: "alice-" + id + "@example.com",
				Subject: "Reset your password", Text: "https://tollgate.example/reset-password?token=TOKEN-" + id,
				HTML: `<a href="https://tollgate.example/reset-password?token=TOKEN-` + id + `">reset</a>`, CreatedAt: s.Clock.Now()})
			if err != nil {
				t.Fatal(err)
			}
		}

		smtp.Down()
		queue("first")
		s.Clock.Advance(90 * time.Second)
		m := s.scrape(t)
		if m.value("tollgate_mail_outbox_depth") != 1 || m.value("tollgate_mail_outbox_oldest_seconds") != 90 {
			t.Errorf("depth %v, oldest %v; want 1 and 90", m.value("tollgate_mail_outbox_depth"), m.value("tollgate_mail_outbox_oldest_seconds"))
		}
		// The sender runs on its own goroutine: wake it (and pass any backoff
		// it chose while the server was down) until cond holds.
		eventually := func(what string, cond func() bool) {
			t.Helper()
			deadline := time.Now().Add(30 * time.Second)
			for !cond() {
				if time.Now().After(deadline) {
					t.Fatalf("%s: not within 30 s", what)
				}
				s.Clock.Advance(mail.DefaultBackoffMax)
				s.App.Mail.Notify()
				time.Sleep(5 * time.Millisecond)
			}
		}
		smtp.Up()
		eventually("the first mail arrives", func() bool { return len(smtp.Messages()) == 1 })

		smtp.Script(func(int) error { return mailtest.SMTPError(550, [3]int{5, 1, 1}, "no such user") })
		queue("second")
		eventually("the 550 is counted as failed", func() bool {
			return s.scrape(t).value("tollgate_mails_total", "outcome=failed") == 1
		})
		if got := len(smtp.Messages()); got != 1 {
			t.Errorf("%d messages arrived, want 1", got)
		}
		m = s.scrape(t)
		if m.value("tollgate_mails_total", "outcome=sent") != 1 || m.value("tollgate_mail_outbox_depth") != 0 || m.value("tollgate_mail_outbox_oldest_seconds") != 0 {
			t.Errorf("sent %v, depth %v, oldest %v", m.value("tollgate_mails_total", "outcome=sent"), m.value("tollgate_mail_outbox_depth"), m.value("tollgate_mail_outbox_oldest_seconds"))
		}
		if !strings.Contains(s.Log.String(), "mailer@"+host) {
			t.Errorf("the log does not name the relay:\n%s", s.Log.String())
		}
		for _, secret := range []string{"TOKEN-", "tollgate.example", "alice-", "hunter2"} {
			if strings.Contains(s.Log.String(), secret) {
				t.Errorf("the log holds %q:\n%s", secret, s.Log.String())
			}
		}
		if !strings.Contains(s.Log.String(), "no such user") {
			t.Errorf("the log does not say why the mail failed:\n%s", s.Log.String())
		}
	})
}
