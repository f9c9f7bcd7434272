package mail_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	netmail "net/mail"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"tollgate/db"
	"tollgate/mail"
)

// smtpServer is a real SMTP server (go-smtp) on a loopback port, whose
// answers a test scripts, and which can go down and come back up on the
// same address.
type smtpServer struct {
	t    testing.TB
	addr string

	mu sync.Mutex
	// answer, when set, decides the reply to RCPT TO: its argument counts
	// the RCPT commands so far (1 for the first); nil error accepts.
	answer   func(n int) error
	rcpts    int
	auths    []string
	received []received
	// arrived gets a value per accepted message.
	arrived chan received
	srv     *smtp.Server
	ln      net.Listener
	// users, when set, enables AUTH PLAIN with these credentials.
	users map[string]string
	// tlsConfig, when set, offers STARTTLS (or, with implicit, speaks TLS
	// from the first byte).
	tlsConfig *tls.Config
	implicit  bool
}

type received struct {
	From, To  string
	MessageID string
	Subject   string
	Raw       []byte
	// TLS is whether the message came over an encrypted connection.
	TLS bool
}

func newSMTPServer(t testing.TB, opts ...func(*smtpServer)) *smtpServer {
	t.Helper()
	s := &smtpServer{t: t, arrived: make(chan received, 10000)}
	for _, o := range opts {
		o(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	s.serve(ln)
	t.Cleanup(s.down)
	return s
}

func (s *smtpServer) serve(ln net.Listener) {
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{s: s, c: c}, nil
	}))
	if s.tlsConfig != nil {
		srv.TLSConfig = s.tlsConfig
		if s.implicit {
			ln = tls.NewListener(ln, s.tlsConfig)
		}
	}
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.ErrorLog = discardLogger{}
	s.mu.Lock()
	s.srv, s.ln = srv, ln
	s.mu.Unlock()
	go srv.Serve(ln)
}

// down closes the listener and every connection: the port refuses.
func (s *smtpServer) down() {
	s.mu.Lock()
	srv, ln := s.srv, s.ln
	s.srv, s.ln = nil, nil
	s.mu.Unlock()
	if srv != nil {
		// The listener is closed here too: Serve may not have registered it
		// with the server yet.
		ln.Close()
		srv.Close()
	}
}

// up listens again on the same address.
func (s *smtpServer) up() {
	s.t.Helper()
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatal(err)
	}
	s.serve(ln)
}

func (s *smtpServer) host() (string, int) {
	host, port, _ := net.SplitHostPort(s.addr)
	var p int
	for _, c := range port {
		p = p*10 + int(c-'0')
	}
	return host, p
}

func (s *smtpServer) script(answer func(n int) error) {
	s.mu.Lock()
	s.answer = answer
	s.mu.Unlock()
}

func (s *smtpServer) messages() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.received...)
}

func (s *smtpServer) rcptCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rcpts
}

// wait returns once n messages in all have arrived, or fails the test.
func (s *smtpServer) wait(n int, timeout time.Duration) {
	s.t.Helper()
	deadline := time.After(timeout)
	for len(s.messages()) < n {
		select {
		case <-s.arrived:
		case <-deadline:
			s.t.Fatalf("%d of %d messages arrived in %s", len(s.messages()), n, timeout)
		}
	}
}

type session struct {
	s        *smtpServer
	c        *smtp.Conn
	from, to string
}

func (ss *session) AuthMechanisms() []string {
	if ss.s.users == nil {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		ss.s.mu.Lock()
		ss.s.auths = append(ss.s.auths, user)
		ok := ss.s.users[user] == pass
		ss.s.mu.Unlock()
		if !ok {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	ss.s.rcpts++
	n, answer := ss.s.rcpts, ss.s.answer
	ss.s.mu.Unlock()
	if answer != nil {
		if err := answer(n); err != nil {
			return err
		}
	}
	ss.to = to
	return nil
}

func (ss *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	_, encrypted := ss.c.TLSConnectionState()
	got := received{From: ss.from, To: ss.to, MessageID: msg.Header.Get("Message-Id"), Subject: msg.Header.Get("Subject"), Raw: raw, TLS: encrypted}
	ss.s.mu.Lock()
	ss.s.received = append(ss.s.received, got)
	ss.s.mu.Unlock()
	ss.s.arrived <- got
	return nil
}

func (ss *session) Reset()        {}
func (ss *session) Logout() error { return nil }

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}

// smtpError is an SMTP reply for the script.
func smtpError(code int, enhanced smtp.EnhancedCode, text string) error {
	return &smtp.SMTPError{Code: code, EnhancedCode: enhanced, Message: text}
}

// transport returns a go-mail transport to the server (no TLS on loopback).
func (s *smtpServer) transport(t testing.TB) *mail.SMTPTransport {
	t.Helper()
	host, port := s.host()
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

func (s *smtpServer) authsSeen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.auths...)
}
