package mail_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"tollgate/db"
	"tollgate/db/dbtest"
	"tollgate/mail"
	"tollgate/mail/mailtest"
)

type fixture struct {
	store  *db.Store
	smtp   *mailtest.Server
	clock  *clock
	events *outcomes
	log    *bytes.Buffer
	sender *mail.Sender
}

func newFixture(t *testing.T, kind string, tune func(*mail.SenderConfig)) *fixture {
	t.Helper()
	f := &fixture{
		store:  db.NewStore(dbtest.Open(t, kind)),
		smtp:   mailtest.NewServer(t),
		clock:  newClock(),
		events: &outcomes{},
		log:    &bytes.Buffer{},
	}
	cfg := mail.SenderConfig{
		Store:     f.store,
		Transport: transportTo(t, f.smtp),
		Logger:    slog.New(slog.NewJSONHandler(f.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Events:    f.events,
		RetryFor:  24 * time.Hour,
		Now:       f.clock.Now,
		// The jitter's upper end, so that advancing by BackoffMax is always enough.
		Rand: func(n int64) int64 { return n - 1 },
	}
	if tune != nil {
		tune(&cfg)
	}
	f.sender = mail.NewSender(cfg)
	return f
}

func (f *fixture) runOnce(t *testing.T) int {
	t.Helper()
	n, err := f.sender.RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// One mail queued is delivered once over SMTP, with a Message-ID derived
// from its row, and its row is marked sent with the bodies (which carry the
// token) erased.
func TestSender_DeliversOnceAndErasesBodies(t *testing.T) {
	forEachKind(t, func(t *testing.T, kind string) {
		f := newFixture(t, kind, nil)
		m := enqueue(t, f.store, "m1", "alice@example.com", f.clock.Now())
		if n := f.runOnce(t); n != 1 {
			t.Fatalf("claimed %d, want 1", n)
		}
		got := f.smtp.Messages()
		if len(got) != 1 {
			t.Fatalf("%d messages arrived, want 1", len(got))
		}
		if got[0].To != "alice@example.com" || got[0].MessageID != "<m1@example.com>" || got[0].Subject != m.Subject {
			t.Errorf("arrived %+v", got[0])
		}
		if !bytes.Contains(got[0].Raw, []byte("SECRET-m1")) || !bytes.Contains(got[0].Raw, []byte("text/html")) ||
			!bytes.Contains(got[0].Raw, []byte("Auto-Submitted: auto-generated")) {
			t.Errorf("message lacks its token or HTML part:\n%s", got[0].Raw)
		}
		e := entry(t, f.store, "m1")
		if e.SentAt == nil || e.FailedAt != nil || e.Attempts != 1 || e.Text != "" || e.HTML != "" || e.Locked != nil {
			t.Errorf("row after delivery: %+v", e)
		}
		if n := f.runOnce(t); n != 0 {
			t.Errorf("claimed %d after delivery, want 0", n)
		}
		f.clock.Advance(48 * time.Hour)
		if n := f.runOnce(t); n != 0 || len(f.smtp.Messages()) != 1 {
			t.Errorf("claimed %d two days later, %d messages", n, len(f.smtp.Messages()))
		}
		if got := f.events.get(); got != [mail.NumOutcomes]int{1, 0, 0} {
			t.Errorf("outcomes %v, want 1 sent", got)
		}
	})
}

// The SMTP server is down when the mail is requested, then comes up: the
// mail is retried after its backoff and arrives, once.
func TestSender_SMTPDownThenUp(t *testing.T) {
	forEachKind(t, func(t *testing.T, kind string) {
		f := newFixture(t, kind, nil)
		f.smtp.Down()
		enqueue(t, f.store, "m1", "alice@example.com", f.clock.Now())
		if n := f.runOnce(t); n != 1 {
			t.Fatalf("claimed %d, want 1", n)
		}
		e := entry(t, f.store, "m1")
		if e.SentAt != nil || e.FailedAt != nil || e.Attempts != 1 || e.LastError == nil || !strings.Contains(*e.LastError, "connect") {
			t.Fatalf("row after a refused connection: %+v (last_error %v)", e, deref(e.LastError))
		}
		if !e.NextAttemptAt.After(f.clock.Now()) || e.Text == "" {
			t.Errorf("next attempt %s not after now %s, or body gone", e.NextAttemptAt, f.clock.Now())
		}
		// Not due yet: nothing is claimed, nothing hammers the server.
		if n := f.runOnce(t); n != 0 {
			t.Errorf("claimed %d before the backoff ran out", n)
		}
		f.smtp.Up()
		f.clock.Advance(mail.DefaultBackoffBase)
		if n := f.runOnce(t); n != 1 {
			t.Fatalf("claimed %d after the backoff, want 1", n)
		}
		f.clock.Advance(time.Hour)
		f.runOnce(t)
		if got := f.smtp.Messages(); len(got) != 1 || got[0].MessageID != "<m1@example.com>" {
			t.Fatalf("arrived %d messages, want 1", len(got))
		}
		if e := entry(t, f.store, "m1"); e.SentAt == nil || e.Attempts != 2 {
			t.Errorf("row: %+v", e)
		}
		if got := f.events.get(); got != [mail.NumOutcomes]int{1, 1, 0} {
			t.Errorf("outcomes %v, want 1 sent, 1 retried", got)
		}
	})
}

// 451 three times, then 250: one delivery, after three retries.
func TestSender_451ThreeTimesThen250(t *testing.T) {
	forEachKind(t, func(t *testing.T, kind string) {
		f := newFixture(t, kind, nil)
		f.smtp.Script(func(n int) error {
			if n <= 3 {
				return mailtest.SMTPError(451, [3]int{4, 7, 1}, "greylisted, try again later")
			}
			return nil
		})
		enqueue(t, f.store, "m1", "alice@example.com", f.clock.Now())
		for range 10 {
			f.runOnce(t)
			f.clock.Advance(mail.DefaultBackoffMax)
		}
		if got := f.smtp.Messages(); len(got) != 1 {
			t.Fatalf("arrived %d messages, want 1", len(got))
		}
		if got := f.smtp.RcptCount(); got != 4 {
			t.Errorf("%d RCPT commands, want 4", got)
		}
		if e := entry(t, f.store, "m1"); e.SentAt == nil || e.Attempts != 4 {
			t.Errorf("row: %+v", e)
		}
		if got := f.events.get(); got != [mail.NumOutcomes]int{1, 3, 0} {
			t.Errorf("outcomes %v, want 1 sent, 3 retried", got)
		}
	})
}

// 550: marked failed at once with the server's answer, counted, its bodies
// erased, and never tried again.
func TestSender_550MarksFailed(t *testing.T) {
	forEachKind(t, func(t *testing.T, kind string) {
		f := newFixture(t, kind, nil)
		f.smtp.Script(func(int) error {
			return mailtest.SMTPError(550, [3]int{5, 1, 1}, "<alice@example.com>: no such user")
		})
		enqueue(t, f.store, "m1", "alice@example.com", f.clock.Now())
		for range 10 {
			f.runOnce(t)
			f.clock.Advance(mail.DefaultBackoffMax)
		}
		if got := f.smtp.RcptCount(); got != 1 {
			t.Errorf("%d RCPT commands, want 1 (no retry after a 5xx)", got)
		}
		e := entry(t, f.store, "m1")
		if e.FailedAt == nil || e.SentAt != nil || e.Attempts != 1 || e.Text != "" || e.HTML != "" {
			t.Errorf("row: %+v", e)
		}
		if e.LastError == nil || !strings.Contains(*e.LastError, "550") || !strings.Contains(*e.LastError, "no such user") {
			t.Errorf("last_error %q lacks the server's answer", deref(e.LastError))
		}
		if strings.Contains(deref(e.LastError), "alice@") || strings.Contains(f.log.String(), "alice@") {
			t.Errorf("the address reached last_error or the log:\n%s\n%s", deref(e.LastError), f.log)
		}
		if got := f.events.get(); got != [mail.NumOutcomes]int{0, 0, 1} {
			t.Errorf("outcomes %v, want 1 failed", got)
		}
	})
}

// A server that answers 4xx for ever: retried with growing delays until
// MAIL_RETRY_FOR after the mail's creation, then marked failed.
func TestSender_GivesUpAfterRetryFor(t *testing.T) {
	forEachKind(t, func(t *testing.T, kind string) {
		f := newFixture(t, kind, func(c *mail.SenderConfig) { c.RetryFor = 2 * time.Hour })
		f.smtp.Script(func(int) error { return mailtest.SMTPError(421, [3]int{4, 3, 0}, "try later") })
		enqueue(t, f.store, "m1", "alice@example.com", f.clock.Now())
		for range 150 {
			f.runOnce(t)
			f.clock.Advance(time.Minute)
		}
		e := entry(t, f.store, "m1")
		if e.FailedAt == nil || !strings.Contains(deref(e.LastError), "MAIL_RETRY_FOR") {
			t.Fatalf("row after 150 minutes: %+v %q", e, deref(e.LastError))
		}
		// 30 s, 1, 2, 4, 8 min, then every 10 min to the 2 h mark: about 15,
		// not one per poll.
		if got := f.smtp.RcptCount(); got < 10 || got > 20 {
			t.Errorf("%d attempts in 2 h, want the backoff's 10 to 20", got)
		}
	})
}

// Neither the body nor its link ever reaches the log or last_error, whatever
// the failure.
func TestSender_NoBodyOrLinkInLogOrError(t *testing.T) {
	forEachKind(t, func(t *testing.T, kind string) {
		f := newFixture(t, kind, nil)
		f.smtp.Script(func(n int) error {
			switch n {
			case 1:
				return mailtest.SMTPError(452, [3]int{4, 2, 2}, "mailbox full")
			default:
				return mailtest.SMTPError(554, [3]int{5, 7, 1}, "rejected")
			}
		})
		enqueue(t, f.store, "m1", "alice@example.com", f.clock.Now())
		enqueue(t, f.store, "m2", "bob@example.com", f.clock.Now())
		f.smtp.Down()
		f.runOnce(t)
		f.smtp.Up()
		for range 5 {
			f.clock.Advance(mail.DefaultBackoffMax)
			f.runOnce(t)
		}
		for _, id := range []string{"m1", "m2"} {
			e := entry(t, f.store, id)
			if e.FailedAt == nil {
				t.Errorf("%s not failed: %+v", id, e)
			}
			for _, secret := range []string{"SECRET", "tollgate.example", "alice@", "bob@"} {
				if strings.Contains(deref(e.LastError), secret) {
					t.Errorf("last_error of %s holds %q: %s", id, secret, deref(e.LastError))
				}
			}
		}
		for _, secret := range []string{"SECRET", "tollgate.example", "alice@", "bob@"} {
			if strings.Contains(f.log.String(), secret) {
				t.Errorf("the log holds %q:\n%s", secret, f.log)
			}
		}
		if !strings.Contains(f.log.String(), "mailbox full") {
			t.Errorf("the log does not say why:\n%s", f.log)
		}
	})
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// forEachKind runs f as a subtest per database kind.
func forEachKind(t *testing.T, f func(t *testing.T, kind string)) {
	t.Helper()
	for _, kind := range dbtest.Kinds {
		t.Run(kind, func(t *testing.T) { f(t, kind) })
	}
}
