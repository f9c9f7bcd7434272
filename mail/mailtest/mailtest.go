// Package mailtest runs a real SMTP server (github.com/emersion/go-smtp) in
// the test's process, on a loopback port, for tests of mail delivery: its
// answers can be scripted (451, 550, accept), it can go down and come back
// on the same address, and it records what arrived.
package mailtest

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	netmail "net/mail"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Server is a real SMTP server (go-smtp) on a loopback port, whose
// answers a test scripts, and which can go down and come back up on the
// same address. It offers no STARTTLS unless WithTLS says so.
type Server struct {
	t testing.TB
	// Addr is host:port.
	Addr string

	mu sync.Mutex
	// answer, when set, decides the reply to RCPT TO: its argument counts
	// the RCPT commands so far (1 for the first); nil error accepts.
	answer   func(n int) error
	rcpts    int
	auths    []string
	Received []Received
	// arrived gets a value per accepted message.
	arrived chan Received
	srv     *smtp.Server
	ln      net.Listener
	// users, when set, enables AUTH PLAIN with these credentials.
	users map[string]string
	// tlsConfig, when set, offers STARTTLS (or, with implicit, speaks TLS
	// from the first byte).
	tlsConfig *tls.Config
	implicit  bool
}

// Received is a message that the server accepted.
type Received struct {
	From, To  string
	MessageID string
	Subject   string
	Raw       []byte
	// TLS is whether the message came over an encrypted connection.
	TLS bool
}

// NewServer starts a server on 127.0.0.1 with a free port, stopped when the
// test ends. By default it accepts every message.
func NewServer(t testing.TB, opts ...func(*Server)) *Server {
	t.Helper()
	s := &Server{t: t, arrived: make(chan Received, 10000)}
	for _, o := range opts {
		o(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = ln.Addr().String()
	s.serve(ln)
	t.Cleanup(s.Down)
	return s
}

func (s *Server) serve(ln net.Listener) {
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

// Down closes the listener and every connection: the port refuses.
func (s *Server) Down() {
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

// Up listens again on the same address.
func (s *Server) Up() {
	s.t.Helper()
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		s.t.Fatal(err)
	}
	s.serve(ln)
}

// Host returns the server's host and port.
func (s *Server) Host() (string, int) {
	host, port, _ := net.SplitHostPort(s.Addr)
	p, _ := strconv.Atoi(port)
	return host, p
}

// Script sets the answer to RCPT TO: answer(n), where n counts the RCPT
// commands so far (1 for the first); nil accepts.
func (s *Server) Script(answer func(n int) error) {
	s.mu.Lock()
	s.answer = answer
	s.mu.Unlock()
}

// Messages returns what arrived, in order.
func (s *Server) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.Received...)
}

// RcptCount is the number of RCPT TO commands received, refused ones too.
func (s *Server) RcptCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rcpts
}

// Wait returns once n messages in all have arrived, or fails the test.
func (s *Server) Wait(n int, timeout time.Duration) {
	s.t.Helper()
	deadline := time.After(timeout)
	for len(s.Messages()) < n {
		select {
		case <-s.arrived:
		case <-deadline:
			s.t.Fatalf("%d of %d messages arrived in %s", len(s.Messages()), n, timeout)
		}
	}
}

type session struct {
	s        *Server
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
	got := Received{From: ss.from, To: ss.to, MessageID: msg.Header.Get("Message-Id"), Subject: msg.Header.Get("Subject"), Raw: raw, TLS: encrypted}
	ss.s.mu.Lock()
	ss.s.Received = append(ss.s.Received, got)
	ss.s.mu.Unlock()
	ss.s.arrived <- got
	return nil
}

func (ss *session) Reset()        {}
func (ss *session) Logout() error { return nil }

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}

// SMTPError is an SMTP reply for Script, such as
// SMTPError(451, [3]int{4, 7, 1}, "greylisted").
func SMTPError(code int, enhanced [3]int, text string) error {
	return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode(enhanced), Message: text}
}

// WithUsers offers AUTH PLAIN (over plain text too) for these credentials.
func WithUsers(users map[string]string) func(*Server) {
	return func(s *Server) { s.users = users }
}

// WithTLS offers STARTTLS with cfg or, when implicit, speaks TLS from the
// first byte (smtps).
func WithTLS(cfg *tls.Config, implicit bool) func(*Server) {
	return func(s *Server) { s.tlsConfig, s.implicit = cfg, implicit }
}

// Auths returns the user names that AUTH was attempted with.
func (s *Server) Auths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.auths...)
}
