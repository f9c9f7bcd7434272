package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	netmail "net/mail"
	"net/netip"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
	gosmtp "github.com/wneessen/go-mail/smtp"

	"tollgate/db"
)

// Transport delivers one rendered mail. An error is transient unless
// IsPermanent says otherwise: the sender retries it later.
type Transport interface {
	Send(ctx context.Context, m db.OutboxMail) error
}

// LogTransport writes each mail to the log instead of sending it: the
// development default, so that a server run with nothing else installed
// shows the whole flow, the link included. It is the one place where a
// mailed token reaches the log, which is why production refuses it unless
// MAIL_TRANSPORT=log says so.
type LogTransport struct {
	Logger *slog.Logger
}

// Send logs m at INFO: recipient, subject and the plain-text body.
func (t LogTransport) Send(ctx context.Context, m db.OutboxMail) error {
	t.Logger.LogAttrs(ctx, slog.LevelInfo, "mail (log transport: written here, not sent over SMTP)",
		slog.String("mail_id", m.ID), slog.String("kind", m.Kind),
		slog.String("to", m.Recipient), slog.String("subject", m.Subject), slog.String("text", m.Text))
	return nil
}

// SMTPOptions configure an SMTPTransport (config.Config's SMTP fields).
type SMTPOptions struct {
	Host string
	Port int
	// ImplicitTLS is smtps://: TLS from the first byte. Otherwise STARTTLS
	// is used whenever the server offers it, and required when credentials
	// are to be sent to a host that is not loopback.
	ImplicitTLS bool
	Username    string
	Password    string
	// From is the sender of every mail (MAIL_FROM); its domain names the
	// Message-IDs.
	From *netmail.Address
	// Timeout bounds the connection and each SMTP command, so that a slow
	// or silent server cannot hold the sender; 0 means DefaultSMTPTimeout.
	Timeout time.Duration
	// TLSConfig, when set, replaces the default (the system's roots, the
	// server name checked, TLS 1.2 at least): for tests and private CAs.
	TLSConfig *tls.Config
	// Dial, when set, opens the TCP connection (tests point a public-looking
	// host name at a loopback server with it). Not with ImplicitTLS.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// DefaultSMTPTimeout bounds an SMTP connection attempt and each command.
const DefaultSMTPTimeout = 15 * time.Second

// SMTPTransport delivers over SMTP through go-mail (STARTTLS or implicit
// TLS, authentication, MIME, Message-ID). It keeps one connection open
// across the mails of a batch and closes it in Idle.
type SMTPTransport struct {
	client *gomail.Client
	from   *netmail.Address
	domain string

	mu   sync.Mutex
	conn *gosmtp.Client
}

var _ Transport = (*SMTPTransport)(nil)

// NewSMTPTransport checks opts and returns a transport; it does not connect.
func NewSMTPTransport(opts SMTPOptions) (*SMTPTransport, error) {
	if opts.Host == "" || opts.Port <= 0 || opts.Port > 65535 {
		return nil, errors.New("smtp: needs a host and a port")
	}
	if opts.From == nil {
		return nil, errors.New("smtp: needs a From address")
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultSMTPTimeout
	}
	copts := []gomail.Option{
		gomail.WithPort(opts.Port),
		gomail.WithTimeout(timeout),
		gomail.WithTLSPolicy(tlsPolicy(opts)),
	}
	if opts.ImplicitTLS {
		copts = append(copts, gomail.WithSSL())
	}
	if opts.TLSConfig != nil {
		copts = append(copts, gomail.WithTLSConfig(opts.TLSConfig))
	}
	if opts.Dial != nil {
		if opts.ImplicitTLS {
			// go-mail dials TLS itself only with its own dialer: a custom one
			// would silently speak plain text to port 465.
			return nil, errors.New("smtp: a custom Dial cannot be combined with ImplicitTLS")
		}
		copts = append(copts, gomail.WithDialContextFunc(opts.Dial))
	}
	if opts.Username != "" || opts.Password != "" {
		auth := gomail.SMTPAuthAutoDiscover
		if isLoopback(opts.Host) {
			// A relay on this host (a local Postfix, Mailpit) often offers
			// PLAIN without TLS; the credentials never leave the machine.
			auth = gomail.SMTPAuthPlain
		}
		copts = append(copts, gomail.WithSMTPAuth(auth),
			gomail.WithUsername(opts.Username), gomail.WithPassword(opts.Password))
	}
	client, err := gomail.NewClient(opts.Host, copts...)
	if err != nil {
		return nil, fmt.Errorf("smtp: %w", err)
	}
	domain := "localhost"
	if at := strings.LastIndexByte(opts.From.Address, '@'); at >= 0 {
		domain = opts.From.Address[at+1:]
	}
	return &SMTPTransport{client: client, from: opts.From, domain: domain}, nil
}

// tlsPolicy: STARTTLS whenever the server offers it; required when
// credentials would otherwise cross the network in clear (a man in the
// middle strips STARTTLS from the EHLO answer to read them), except to a
// loopback host, which no one between can see.
func tlsPolicy(opts SMTPOptions) gomail.TLSPolicy {
	if !opts.ImplicitTLS && (opts.Username != "" || opts.Password != "") && !isLoopback(opts.Host) {
		return gomail.TLSMandatory
	}
	return gomail.TLSOpportunistic
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// Send delivers m.
func (t *SMTPTransport) Send(ctx context.Context, m db.OutboxMail) error {
	_, err := t.Deliver(ctx, m)
	return err
}

// Deliver sends m and returns the server's answer to the end of DATA.
func (t *SMTPTransport) Deliver(ctx context.Context, m db.OutboxMail) (string, error) {
	msg, err := t.message(m)
	if err != nil {
		return "", permanent(err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	reused := t.conn != nil
	if err := t.connect(ctx); err != nil {
		return "", err
	}
	err = t.send(ctx, msg)
	var se *gomail.SendError
	if err != nil && reused && ctx.Err() == nil && errors.As(err, &se) && se.Reason == gomail.ErrConnCheck {
		// The kept connection was closed by the server while idle: one new
		// connection, once.
		t.drop()
		if err := t.connect(ctx); err != nil {
			return "", err
		}
		err = t.send(ctx, msg)
	}
	if err != nil {
		// After any failure the connection's state is unknown: start afresh.
		t.drop()
		return "", err
	}
	return msg.ServerResponse(), nil
}

// send sends msg on the open connection, and closes the connection if ctx
// ends first. go-mail bounds each SMTP command by the timeout but a whole
// message only by their sum; closing the socket under it (the textproto
// connection, not the smtp.Client, whose mutex the blocked command holds)
// makes the pending read fail at once, so that ctx bounds the delivery.
func (t *SMTPTransport) send(ctx context.Context, msg *gomail.Msg) error {
	conn := t.conn
	stop := context.AfterFunc(ctx, func() { conn.Text.Close() })
	err := t.client.SendWithSMTPClient(conn, msg)
	if !stop() {
		// ctx ended: the socket is closed, whatever the last answer was.
		return errors.Join(err, fmt.Errorf("smtp: %w", context.Cause(ctx)))
	}
	return err
}

func (t *SMTPTransport) connect(ctx context.Context) error {
	if t.conn != nil {
		return nil
	}
	conn, err := t.client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return fmt.Errorf("connect to SMTP server: %w", err)
	}
	t.conn = conn
	return nil
}

func (t *SMTPTransport) drop() {
	if t.conn != nil {
		if t.client.CloseWithSMTPClient(t.conn) != nil {
			// QUIT failed (the connection is gone already): nothing to tell.
			_ = t.conn.Close()
		}
		t.conn = nil
	}
}

// Idle closes the connection kept between mails; the next Send opens one.
func (t *SMTPTransport) Idle() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.drop()
}

// message builds the MIME message of m: a plain-text part and, when m has
// one, an HTML alternative. The Message-ID is derived from the outbox row,
// so that a mail sent again after an ambiguous failure (a lost 250) carries
// the same one and the receiving side can tell.
func (t *SMTPTransport) message(m db.OutboxMail) (*gomail.Msg, error) {
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	msg.FromMailAddress(t.from)
	if err := msg.To(m.Recipient); err != nil {
		return nil, fmt.Errorf("recipient: %w", err)
	}
	msg.Subject(m.Subject)
	msg.SetMessageIDWithValue(m.ID + "@" + t.domain)
	msg.SetDateWithValue(m.CreatedAt)
	// RFC 3834: a machine's mail, to which out-of-office replies are not sent.
	msg.SetGenHeader(gomail.Header("Auto-Submitted"), "auto-generated")
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	return msg, nil
}
