package api

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	netmail "net/mail"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/urfave/cli/v3"
	"golang.org/x/term"

	"tollgate/auth"
	"tollgate/config"
	"tollgate/db"
	"tollgate/mail"
)

// The operator commands. Those that touch the database load the same
// configuration as the server (config.Load), so that production's rules
// apply to them too, and migrate first, as the server does at start.

func migrateCommand(env Env) *cli.Command {
	return leaf("migrate", "apply the database migrations and exit", "", nil,
		func(ctx context.Context, _ *cli.Command) error {
			dbx, err := openDatabase(ctx, env)
			if err != nil {
				return err
			}
			defer dbx.Close()
			fmt.Fprintf(env.Stdout, "migrated the %s database\n", dbx.DriverName())
			return nil
		})
}

func userCreateCommand(env Env) *cli.Command {
	return leaf("create", "create a user; the password is read from standard input, never from the command line", "NAME",
		[]cli.Flag{&cli.StringFlag{Name: "role", Value: string(auth.RoleUser), Usage: "USER or ADMIN"},
			&cli.StringFlag{Name: "email", Usage: "the user's email address, stored unverified; a verification is queued for the server to mail"}},
		func(ctx context.Context, cmd *cli.Command) error {
			role, err := parseRole(cmd.String("role"))
			if err != nil {
				return err
			}
			password, err := readPassword(env)
			if err != nil {
				return fmt.Errorf("user create: %w", err)
			}
			return withOperator(ctx, env, func(op *auth.Operator) error {
				u, err := op.CreateUser(ctx, cmd.Args().First(), password, role, cmd.String("email"))
				if err != nil {
					return operatorError("user create", cmd.Args().First(), err)
				}
				fmt.Fprintf(env.Stdout, "created %s %s (id %s)\n", u.Role, u.Username, u.ID)
				if u.Email != nil {
					fmt.Fprintln(env.Stdout, "queued a verification mail to the address given")
				}
				return nil
			})
		})
}

func userSetRoleCommand(env Env) *cli.Command {
	return leaf("set-role", "give a user a role, at once on every instance (as the setRole mutation)", "NAME ROLE", nil,
		func(ctx context.Context, cmd *cli.Command) error {
			role, err := parseRole(cmd.Args().Get(1))
			if err != nil {
				return err
			}
			return withOperator(ctx, env, func(op *auth.Operator) error {
				u, err := op.SetRole(ctx, cmd.Args().First(), role)
				if err != nil {
					return operatorError("user set-role", cmd.Args().First(), err)
				}
				fmt.Fprintf(env.Stdout, "%s is %s\n", u.Username, u.Role)
				return nil
			})
		})
}

func userResetMFACommand(env Env) *cli.Command {
	return leaf("reset-mfa", "delete a user's second factors (TOTP and passkeys) and recovery codes and sign out their sessions", "NAME", nil,
		func(ctx context.Context, cmd *cli.Command) error {
			return withOperator(ctx, env, func(op *auth.Operator) error {
				if err := op.ResetMFA(ctx, cmd.Args().First()); err != nil {
					return operatorError("user reset-mfa", cmd.Args().First(), err)
				}
				fmt.Fprintf(env.Stdout, "second factors of %s removed; every session signed out\n", cmd.Args().First())
				return nil
			})
		})
}

func userShowCommand(env Env) *cli.Command {
	return leaf("show", "print a user: role, creation, email address (verified or not) and every second factor (passkeys with their authenticator, counter and sync state)", "NAME", nil,
		func(ctx context.Context, cmd *cli.Command) error {
			return withOperator(ctx, env, func(op *auth.Operator) error {
				d, err := op.ShowUser(ctx, cmd.Args().First())
				if err != nil {
					return operatorError("user show", cmd.Args().First(), err)
				}
				writeUserDetails(env.Stdout, d)
				return nil
			})
		})
}

// writeUserDetails prints d as aligned text, one factor a line. Nothing
// secret is stored in what it prints: no key, no TOTP secret.
func writeUserDetails(out io.Writer, d *auth.UserDetails) {
	fmt.Fprintf(out, "user     %s\nid       %s\nrole     %s\ncreated  %s\n", d.User.Username, d.User.ID, d.User.Role,
		d.User.CreatedAt.UTC().Format(time.RFC3339))
	// The address and whether it is verified: what decides whether a reset
	// mail can reach the user (only a verified address receives one).
	switch {
	case d.User.Email == nil:
		fmt.Fprintln(out, "email    none (no password reset by mail)")
	case d.User.EmailVerified:
		fmt.Fprintf(out, "email    %s (verified)\n", *d.User.Email)
	default:
		fmt.Fprintf(out, "email    %s (not verified: no password reset by mail until it is)\n", *d.User.Email)
	}
	if len(d.Factors) == 0 {
		fmt.Fprintln(out, "factors  none (a password alone)")
		return
	}
	fmt.Fprintf(out, "factors  %d\n", len(d.Factors))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  TYPE\tNAME\tVERIFIED\tCREATED\tLAST USED\tID\tDETAILS")
	for _, f := range d.Factors {
		name, last := "-", "never"
		if f.FriendlyName != nil {
			name = *f.FriendlyName
		}
		if f.LastUsedAt != nil {
			last = f.LastUsedAt.UTC().Format(time.RFC3339)
		}
		details := ""
		if p := f.Passkey; p != nil {
			transports := strings.Join(p.Transports, ",")
			if transports == "" {
				transports = "-"
			}
			details = fmt.Sprintf("aaguid %s, transports %s, sign count %d, backup eligible %s, backed up %s",
				p.AAGUID, transports, p.SignCount, yesNo(p.BackupEligible), yesNo(p.BackupState))
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Type, name, yesNo(f.Verified), f.CreatedAt.UTC().Format(time.RFC3339), last, f.ID, details)
	}
	tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func sessionsRevokeCommand(env Env) *cli.Command {
	return leaf("revoke", "sign out every session of a user, on every instance (as logout(allSessions: true))", "",
		[]cli.Flag{&cli.StringFlag{Name: "user", Required: true, Usage: "the user's `NAME`"}},
		func(ctx context.Context, cmd *cli.Command) error {
			return withOperator(ctx, env, func(op *auth.Operator) error {
				n, err := op.RevokeSessions(ctx, cmd.String("user"))
				if err != nil {
					return operatorError("sessions revoke", cmd.String("user"), err)
				}
				fmt.Fprintf(env.Stdout, "revoked %d session(s)\n", n)
				return nil
			})
		})
}

func keysGenerateCommand(env Env) *cli.Command {
	return leaf("generate", "write a new signing key to standard output: EdDSA a PKCS#8 PEM for JWT_PRIVATE_KEY_FILE, HS256 a secret for JWT_SECRET", "",
		[]cli.Flag{&cli.StringFlag{Name: "alg", Value: "EdDSA", Usage: "EdDSA or HS256"}},
		func(_ context.Context, cmd *cli.Command) error {
			switch cmd.String("alg") {
			case "EdDSA":
				_, priv, err := ed25519.GenerateKey(rand.Reader)
				if err != nil {
					return fmt.Errorf("keys generate: %w", err)
				}
				der, err := x509.MarshalPKCS8PrivateKey(priv)
				if err != nil {
					return fmt.Errorf("keys generate: %w", err)
				}
				return pem.Encode(env.Stdout, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
			case "HS256":
				// 48 random bytes, base64url without padding: 64 characters that
				// are safe in a shell, an .env file and a URL, and whose raw
				// bytes (what JWT_SECRET uses) are well over the 32 required.
				b := make([]byte, 48)
				rand.Read(b)
				_, err := fmt.Fprintln(env.Stdout, base64.RawURLEncoding.EncodeToString(b))
				return err
			default:
				return usagef("keys generate: --alg must be EdDSA or HS256, not %q", cmd.String("alg"))
			}
		})
}

func versionCommand(env Env) *cli.Command {
	return leaf("version", "print the version, the source revision and the Go version", "", nil,
		func(context.Context, *cli.Command) error {
			info, ok := debug.ReadBuildInfo()
			if !ok {
				return errors.New("version: this binary carries no build information")
			}
			version := info.Main.Version
			if version == "" {
				version = "(devel)"
			}
			fmt.Fprintf(env.Stdout, "tollgate %s\n", version)
			settings := map[string]string{}
			for _, s := range info.Settings {
				settings[s.Key] = s.Value
			}
			if rev := settings["vcs.revision"]; rev != "" {
				if settings["vcs.modified"] == "true" {
					rev += " (modified)"
				}
				fmt.Fprintf(env.Stdout, "revision %s\n", rev)
			}
			if t := settings["vcs.time"]; t != "" {
				fmt.Fprintf(env.Stdout, "committed %s\n", t)
			}
			fmt.Fprintf(env.Stdout, "built with %s %s/%s\n", info.GoVersion, runtime.GOOS, runtime.GOARCH)
			return nil
		})
}

// mailTestTimeout bounds "mail test": a connection, STARTTLS, AUTH and one
// message, each SMTP step bounded by the transport's own timeout too.
const mailTestTimeout = time.Minute

func mailTestCommand(env Env) *cli.Command {
	return leaf("test", "send a test mail to ADDRESS through the configured transport (SMTP_URL, or the log) and print the server's answer", "ADDRESS", nil,
		func(ctx context.Context, cmd *cli.Command) error {
			cfg, err := config.Load(env.Getenv)
			if err != nil {
				return err
			}
			addr, err := netmail.ParseAddress(cmd.Args().First())
			if err != nil || addr.Name != "" {
				return usagef("mail test: ADDRESS must be one address such as alice@example.com, not %q", cmd.Args().First())
			}
			// The log transport writes to standard output, in the server's log format.
			transport, err := MailTransport(cfg, cfg.NewLogger(env.Stdout))
			if err != nil {
				return err
			}
			now := env.now().UTC()
			m := db.OutboxMail{
				ID: uuid.NewString(), Kind: "test", Recipient: addr.Address, CreatedAt: now,
				Subject: "Tollgate test mail",
				Text:    "This is a test mail from Tollgate (tollgate mail test), sent " + now.Format(time.RFC1123Z) + ".\nIf it arrived, mail delivery works.\n",
			}
			ctx, cancel := context.WithTimeout(ctx, mailTestTimeout)
			defer cancel()
			smtp, ok := transport.(*mail.SMTPTransport)
			if !ok {
				if err := transport.Send(ctx, m); err != nil {
					return fmt.Errorf("mail test: %w", err)
				}
				fmt.Fprintln(env.Stdout, "MAIL_TRANSPORT=log: the mail was written to the log above, not sent")
				return nil
			}
			defer smtp.Idle()
			reply, err := smtp.Deliver(ctx, m)
			if err != nil {
				// The SMTP server's answer, on one line; the password of
				// SMTP_URL is in neither it nor the relay's name.
				return fmt.Errorf("mail test: delivery through %s failed: %s", cfg.Mail.SMTP, mail.Reason(err, ""))
			}
			fmt.Fprintf(env.Stdout, "%s accepted the mail to %s: %s\n", cfg.Mail.SMTP, addr.Address, reply)
			return nil
		})
}

// healthcheckTimeout bounds the container's health probe; /healthz answers
// without touching the database, so anything slower is a hung process.
const healthcheckTimeout = 3 * time.Second

func healthcheckCommand(env Env) *cli.Command {
	return leaf("healthcheck", "exit 0 if the server at ADDR answers /healthz with 200, 1 otherwise (for a container HEALTHCHECK)", "", nil,
		func(ctx context.Context, _ *cli.Command) error {
			cfg, err := config.Load(env.Getenv)
			if err != nil {
				return err
			}
			url, err := healthURL(cfg.Addr)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(ctx, healthcheckTimeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return fmt.Errorf("healthcheck: %w", err)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				return fmt.Errorf("healthcheck: %w", err)
			}
			defer res.Body.Close()
			io.Copy(io.Discard, io.LimitReader(res.Body, 1<<10))
			if res.StatusCode != http.StatusOK {
				return fmt.Errorf("healthcheck: %s answered %s", url, res.Status)
			}
			return nil
		})
}

// healthURL is the /healthz of the server listening on addr, reached over
// loopback when it listens on every address (":8080", "0.0.0.0:8080").
func healthURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("ADDR: %w", err)
	}
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz", nil
}

// openDatabase loads the configuration and opens and migrates its database.
func openDatabase(ctx context.Context, env Env) (*sqlx.DB, error) {
	cfg, err := config.Load(env.Getenv)
	if err != nil {
		return nil, err
	}
	dbx, err := db.Open(ctx, cfg.DatabaseURL, cfg.DatabaseMaxConns)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	if err := db.Migrate(ctx, dbx); err != nil {
		dbx.Close()
		return nil, err
	}
	return dbx, nil
}

// withOperator calls fn with an Operator on the configured database.
func withOperator(ctx context.Context, env Env, fn func(*auth.Operator) error) error {
	dbx, err := openDatabase(ctx, env)
	if err != nil {
		return err
	}
	defer dbx.Close()
	hasher, err := auth.NewHasher(auth.PasswordParams, 0)
	if err != nil {
		return err
	}
	cfg, err := config.Load(env.Getenv) // read once already, by openDatabase: it is valid
	if err != nil {
		return err
	}
	composer, err := mail.NewComposer(cfg.MailLinks())
	if err != nil {
		return err
	}
	return fn(auth.NewOperator(db.NewStore(dbx), hasher, slog.New(slog.DiscardHandler), env.now).
		WithMail(composer, cfg.Email.VerificationTTL))
}

// operatorError says in one line why the domain refused: its public message
// (never a secret), or that no user has that name.
func operatorError(command, username string, err error) error {
	if errors.Is(err, auth.ErrNotFound) {
		return fmt.Errorf("%s: no user is named %q", command, username)
	}
	var authErr *auth.Error
	if errors.As(err, &authErr) {
		return fmt.Errorf("%s: %s", command, authErr.Message)
	}
	return fmt.Errorf("%s: %w", command, err)
}

func parseRole(s string) (auth.Role, error) {
	role := auth.Role(strings.ToUpper(s))
	if !role.Valid() {
		return "", usagef("role must be USER or ADMIN, not %q", s)
	}
	return role, nil
}

// maxPasswordLine bounds what is read from standard input for a password:
// far above the longest password allowed (128 bytes), so that a longer one is
// refused by the password rules rather than cut short.
const maxPasswordLine = 4 << 10

// readPassword reads the new password. At a terminal it asks twice without
// echo; otherwise it reads one line of standard input (a pipe or a file from
// a secret store). It is never taken from the command line, where every user
// of the machine could read it in the process list and the shell keeps it.
func readPassword(env Env) (string, error) {
	if f, ok := env.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		first, err := promptPassword(f, env.Stdout, "Password: ")
		if err != nil {
			return "", err
		}
		again, err := promptPassword(f, env.Stdout, "Repeat password: ")
		if err != nil {
			return "", err
		}
		if first != again {
			return "", errors.New("the passwords do not match")
		}
		return first, nil
	}
	line, err := bufio.NewReader(io.LimitReader(env.Stdin, maxPasswordLine)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password: %w", err)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return "", errors.New("no password: write it as one line on standard input")
	}
	return line, nil
}

func promptPassword(tty *os.File, out io.Writer, prompt string) (string, error) {
	fmt.Fprint(out, prompt)
	b, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(out)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	return string(b), nil
}

// oidcCheckCommand fetches the discovery document of every provider of
// OIDC_PROVIDERS and prints what it found: the endpoints, the key set and
// the signing algorithms. It exits 1 when one fails. The client secrets
// are never printed.
func oidcCheckCommand(env Env) *cli.Command {
	return leaf("check", "fetch every OIDC_PROVIDERS provider's discovery document and print what it found (exit 1 when one fails)", "", nil,
		func(ctx context.Context, cmd *cli.Command) error {
			cfg, err := config.Load(env.Getenv)
			if err != nil {
				return err
			}
			if len(cfg.OIDC.Providers) == 0 {
				return errors.New("oidc check: OIDC_PROVIDERS names no provider")
			}
			failed := 0
			for _, c := range auth.CheckProviders(ctx, auth.NewProviderClient(cfg.OIDC.Timeout), oidcProviders(cfg)) {
				if c.Err != nil {
					failed++
					fmt.Fprintf(env.Stdout, "%s: FAILED: %s: %v\n", c.Name, c.Issuer, c.Err)
					continue
				}
				fmt.Fprintf(env.Stdout, "%s: ok: issuer %s\n  authorization %s\n  token %s\n  keys %s\n  signing %s\n  scopes %s\n  callback to register: %s/auth/oidc/%s/callback\n",
					c.Name, c.Issuer, c.AuthURL, c.TokenURL, c.JWKSURL, strings.Join(c.SigningAlgs, " "), strings.Join(c.Scopes, " "), cfg.PublicURL, c.Name)
			}
			if failed > 0 {
				return fmt.Errorf("oidc check: %d of %d providers failed", failed, len(cfg.OIDC.Providers))
			}
			return nil
		})
}
