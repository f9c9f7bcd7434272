package mail_test

import (
	"context"
	netmail "net/mail"
	"sync"
	"testing"
	"time"

	"tollgate/db"
	"tollgate/mail"
	"tollgate/mail/mailtest"
)

// transportTo returns a go-mail transport to the server (no TLS on loopback).
func transportTo(t testing.TB, s *mailtest.Server) *mail.SMTPTransport {
	t.Helper()
	host, port := s.Host()
	tr, err := mail.NewSMTPTransport(mail.SMTPOptions{
		Host: host, Port: port, From: &netmail.Address{Name: "Tollgate", Address: "no-reply@example.com"},
		Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// clock is a test clock that moves only when told.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// outcomes counts mail.Events.
type outcomes struct {
	mu sync.Mutex
	n  [mail.NumOutcomes]int
}

func (o *outcomes) MailDelivery(x mail.Outcome) {
	o.mu.Lock()
	o.n[x]++
	o.mu.Unlock()
}

func (o *outcomes) get() [mail.NumOutcomes]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n
}

// enqueue queues a mail to to, created now.
func enqueue(t testing.TB, store *db.Store, id, to string, now time.Time) db.OutboxMail {
	t.Helper()
	m := db.OutboxMail{ID: id, Kind: "verify_email", Recipient: to, Subject: "Verify your address",
		Text: "Open https://tollgate.example/verify-email?token=SECRET-" + id + " to verify.",
		HTML: "<p><a href=\"https://tollgate.example/verify-email?token=SECRET-" + id + "\">Verify</a></p>", CreatedAt: now}
	if err := store.EnqueueMail(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	return m
}

func entry(t testing.TB, store *db.Store, id string) db.OutboxEntry {
	t.Helper()
	e, err := store.OutboxEntry(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return e
}
