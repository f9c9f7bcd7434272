package mail_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"log/slog"
	"math/big"
	"net"
	netmail "net/mail"
	"strings"
	"testing"
	"time"

	gomail "github.com/wneessen/go-mail"

	"tollgate/db"
	"tollgate/mail"
	"tollgate/mail/mailtest"
)

var testFrom = &netmail.Address{Name: "Tollgate", Address: "no-reply@example.com"}

func testMail() db.OutboxMail {
	return db.OutboxMail{ID: "m1", Kind: "test", Recipient: "alice@example.com", Subject: "Hello",
		Text: "plain", HTML: "<p>html</p>", CreatedAt: time.Now().UTC()}
}

// testCert is a self-signed certificate for localhost, 127.0.0.1 and
// smtp.example.test, and a pool that trusts it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost", "smtp.example.test"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// dialTo sends every connection to addr whatever host was asked for: a
// public-looking relay name served by the loopback test server.
func dialTo(addr string) func(ctx context.Context, network, _ string) (net.Conn, error) {
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
}

// To a loopback relay, credentials go without TLS (PLAIN), as to a local
// Postfix or Mailpit.
func TestSMTP_AuthToLoopbackWithoutTLS(t *testing.T) {
	server := mailtest.NewServer(t, mailtest.WithUsers(map[string]string{"mailer": "s3cret"}))
	host, port := server.Host()
	tr, err := mail.NewSMTPTransport(mail.SMTPOptions{Host: host, Port: port, Username: "mailer", Password: "s3cret", From: testFrom, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Send(context.Background(), testMail()); err != nil {
		t.Fatal(err)
	}
	if got := server.Messages(); len(got) != 1 || got[0].TLS {
		t.Fatalf("arrived %+v", got)
	}
	if server.Auths()[0] != "mailer" {
		t.Errorf("auths %v", server.Auths())
	}
}

// A relay elsewhere that does not offer STARTTLS (or from which a man in
// the middle stripped it) gets no credentials: the attempt fails before
// AUTH, and is transient (the relay may be fixed).
func TestSMTP_NoCredentialsInClearToARemoteHost(t *testing.T) {
	server := mailtest.NewServer(t, mailtest.WithUsers(map[string]string{"mailer": "s3cret"}))
	_, port := server.Host()
	tr, err := mail.NewSMTPTransport(mail.SMTPOptions{Host: "smtp.example.test", Port: port, Username: "mailer", Password: "s3cret",
		From: testFrom, Timeout: 5 * time.Second, Dial: dialTo(server.Addr)})
	if err != nil {
		t.Fatal(err)
	}
	err = tr.Send(context.Background(), testMail())
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("Send = %v, want a STARTTLS refusal", err)
	}
	if mail.IsPermanent(err) {
		t.Errorf("a missing STARTTLS is permanent: %v", err)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("the error holds the password: %v", err)
	}
	if len(server.Auths()) != 0 || len(server.Messages()) != 0 {
		t.Errorf("the server saw AUTH %v and %d messages", server.Auths(), len(server.Messages()))
	}
}

// STARTTLS is used whenever the server offers it, the certificate checked;
// credentials then go over TLS to a remote host.
func TestSMTP_STARTTLSWhenOffered(t *testing.T) {
	cert, pool := testCert(t)
	server := mailtest.NewServer(t, mailtest.WithUsers(map[string]string{"mailer": "s3cret"}),
		mailtest.WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}}, false))
	_, port := server.Host()
	for _, creds := range []bool{false, true} {
		opts := mail.SMTPOptions{Host: "smtp.example.test", Port: port, From: testFrom, Timeout: 5 * time.Second,
			Dial: dialTo(server.Addr), TLSConfig: &tls.Config{ServerName: "smtp.example.test", RootCAs: pool, MinVersion: tls.VersionTLS12}}
		if creds {
			opts.Username, opts.Password = "mailer", "s3cret"
		}
		tr, err := mail.NewSMTPTransport(opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Send(context.Background(), testMail()); err != nil {
			t.Fatalf("credentials %v: %v", creds, err)
		}
	}
	got := server.Messages()
	if len(got) != 2 || !got[0].TLS || !got[1].TLS {
		t.Fatalf("arrived %+v, want 2 over TLS", got)
	}
	if len(server.Auths()) != 1 {
		t.Errorf("auths %v, want one", server.Auths())
	}

	// A certificate that does not verify is refused, and nothing is sent.
	tr, err := mail.NewSMTPTransport(mail.SMTPOptions{Host: "smtp.example.test", Port: port, From: testFrom,
		Timeout: 5 * time.Second, Dial: dialTo(server.Addr)})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Send(context.Background(), testMail()); err == nil {
		t.Error("an untrusted certificate was accepted")
	}
	if len(server.Messages()) != 2 {
		t.Errorf("a message went over the unverified connection")
	}
}

// smtps:// speaks TLS from the first byte.
func TestSMTP_ImplicitTLS(t *testing.T) {
	cert, pool := testCert(t)
	server := mailtest.NewServer(t, mailtest.WithUsers(map[string]string{"mailer": "s3cret"}),
		mailtest.WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}}, true))
	host, port := server.Host()
	tr, err := mail.NewSMTPTransport(mail.SMTPOptions{Host: host, Port: port, ImplicitTLS: true, Username: "mailer", Password: "s3cret",
		From: testFrom, Timeout: 5 * time.Second, TLSConfig: &tls.Config{ServerName: host, RootCAs: pool, MinVersion: tls.VersionTLS12}})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Send(context.Background(), testMail()); err != nil {
		t.Fatal(err)
	}
	if got := server.Messages(); len(got) != 1 || !got[0].TLS {
		t.Fatalf("arrived %+v", got)
	}
}

// A server that accepts the connection and never greets holds a delivery
// no longer than the timeout.
func TestSMTP_SilentServerTimesOut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, silent, until the test ends
		}
	}()
	addr := ln.Addr().(*net.TCPAddr)
	tr, err := mail.NewSMTPTransport(mail.SMTPOptions{Host: "127.0.0.1", Port: addr.Port, From: testFrom, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = tr.Send(context.Background(), testMail())
	if took := time.Since(start); err == nil || took > 5*time.Second {
		t.Fatalf("Send = %v after %s, want an error within the timeout", err, took)
	}
	if mail.IsPermanent(err) {
		t.Errorf("a timeout is permanent: %v", err)
	}
}

// The classification: 5xx is permanent, 4xx and connection errors are not.
func TestIsPermanent(t *testing.T) {
	server := mailtest.NewServer(t)
	tr := transportTo(t, server)
	for _, tc := range []struct {
		answer error
		want   bool
	}{
		{mailtest.SMTPError(550, [3]int{5, 1, 1}, "no such user"), true},
		{mailtest.SMTPError(554, [3]int{5, 7, 1}, "rejected"), true},
		{mailtest.SMTPError(451, [3]int{4, 7, 1}, "greylisted"), false},
		{mailtest.SMTPError(421, [3]int{4, 3, 0}, "shutting down"), false},
	} {
		server.Script(func(int) error { return tc.answer })
		err := tr.Send(context.Background(), testMail())
		var se *gomail.SendError
		if !errors.As(err, &se) {
			t.Fatalf("%v: not a SendError: %v", tc.answer, err)
		}
		if got := mail.IsPermanent(err); got != tc.want {
			t.Errorf("%v: IsPermanent = %v, want %v", tc.answer, got, tc.want)
		}
	}
	bad := testMail()
	bad.Recipient = "not an address"
	if err := tr.Send(context.Background(), bad); !mail.IsPermanent(err) {
		t.Errorf("a malformed recipient: IsPermanent false (%v)", err)
	}
	if mail.IsPermanent(errors.New("connection reset")) || mail.IsPermanent(nil) {
		t.Error("a plain error is permanent")
	}
}

// The log transport writes one INFO line per mail, link included: the
// development flow with nothing installed.
func TestLogTransport_OneLinePerMail(t *testing.T) {
	var buf bytes.Buffer
	tr := mail.LogTransport{Logger: slog.New(slog.NewJSONHandler(&buf, nil))}
	m := testMail()
	m.Text = "Open https://tollgate.example/verify-email?token=abc"
	if err := tr.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	line := buf.String()
	if strings.Count(line, "\n") != 1 || !strings.Contains(line, `"level":"INFO"`) ||
		!strings.Contains(line, "alice@example.com") || !strings.Contains(line, "token=abc") || !strings.Contains(line, "Hello") {
		t.Errorf("log line: %s", line)
	}
}

// A server that stalls in the middle of a message (here: it never answers
// RCPT TO) holds a delivery no longer than its context, although each SMTP
// command alone may take the transport's whole timeout; the connection is
// dropped and the next mail gets a fresh one.
func TestSMTP_ContextBoundsAStalledDelivery(t *testing.T) {
	server := mailtest.NewServer(t)
	release := make(chan struct{})
	defer close(release)
	server.Script(func(n int) error {
		if n == 1 {
			<-release
		}
		return nil
	})
	tr := transportTo(t, server) // 5 s per command
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := tr.Send(ctx, testMail())
	if took := time.Since(start); err == nil || took > 2*time.Second {
		t.Fatalf("Send = %v after %s, want an error soon after 200 ms", err, took)
	}
	if mail.IsPermanent(err) {
		t.Errorf("a stalled server is permanent: %v", err)
	}
	if err := tr.Send(context.Background(), testMail()); err != nil {
		t.Fatalf("the next mail: %v", err)
	}
	if got := len(server.Messages()); got != 1 {
		t.Errorf("%d messages arrived, want 1", got)
	}
}
