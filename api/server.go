package api

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"tollgate/auth"
	"tollgate/config"
	"tollgate/db"
	"tollgate/graph"
	"tollgate/mail"
	"tollgate/note"
)

// Server is a running Tollgate: its HTTP handler and the background work
// (revocation sync, cleanup) that Close stops.
type Server struct {
	http.Handler
	// Auth is the domain service, for tests and tools that need to reach past HTTP.
	Auth *auth.Service
	// Store is the storage, whose query count tests read.
	Store *db.Store
	// Notes is the notes service.
	Notes *note.Service
	// Hasher is the password hasher, whose work tests count.
	Hasher *auth.Hasher
	// Sockets are the open WebSockets, which a shutdown closes with 1001
	// (graph.Sockets.GoingAway): net/http's Shutdown leaves them alone.
	Sockets *graph.Sockets
	// Metrics, when METRICS_ADDR is set, serves GET /metrics (and nothing
	// else) for that second listener, and Handler answers 404 for /metrics;
	// nil when /metrics is served by Handler.
	Metrics http.Handler
	// Mail delivers the mail outbox; the flows call its Notify after
	// committing a transaction that queued a mail.
	Mail *mail.Sender
	// listening is closed once LISTEN has taken effect and the resync that
	// follows it has run (at once on SQLite).
	listening chan struct{}
	stop      context.CancelFunc
	done      chan struct{}
}

// Listening is closed once this instance hears every other instance's
// revocations: on PostgreSQL, when its LISTEN has taken effect and what was
// announced before it has been read; on SQLite, at once. Until then another
// instance's logout reaches it only through the periodic resync.
func (s *Server) Listening() <-chan struct{} { return s.listening }

// Close stops the background work and waits for it, and for the mails
// being queued after their request was answered.
func (s *Server) Close() {
	s.stop()
	<-s.done
	s.Auth.WaitMail()
}

// Bounds on one operation besides MAX_DEPTH and MAX_COMPLEXITY: GraphiQL's
// full introspection query selects about 150 fields and no aliases.
const (
	maxFields     = 500
	maxAliases    = 50
	maxQueryBytes = 100_000
)

// How often the revocation list is reloaded in full (a safety net behind
// LISTEN/NOTIFY) and how often expired rows are deleted.
const (
	resyncInterval  = 15 * time.Second
	cleanupInterval = 10 * time.Minute
)

// NewServer wires the whole server on an open, migrated database: signing
// keys, the domain service, the GraphQL handler and the routes, and starts
// the background work. It creates the ADMIN of ADMIN_USERNAME/ADMIN_PASSWORD
// if missing. now is the clock of every token and timestamp.
func NewServer(ctx context.Context, cfg config.Config, dbx *sqlx.DB, logger *slog.Logger, now func() time.Time) (*Server, error) {
	store := db.NewStore(dbx)
	keys, err := signingKeys(ctx, cfg, store, now)
	if err != nil {
		return nil, err
	}
	tokens, err := auth.NewTokenIssuer(auth.TokenConfig{
		Issuer:   cfg.Issuer,
		Audience: cfg.Audience,
		TTL:      cfg.AccessTTL,
		Leeway:   cfg.JWTLeeway,
	}, now, keys...)
	if err != nil {
		return nil, err
	}
	hasher, err := auth.NewHasher(auth.PasswordParams, cfg.PasswordHashConcurrency)
	if err != nil {
		return nil, err
	}
	if cfg.HashProcs {
		hasher.GrowProcs()
	}
	if cfg.IdleGCPercent > 0 {
		hasher.SetIdleGCPercent(cfg.IdleGCPercent)
	}
	met := newMetrics()
	composer, err := mail.NewComposer(cfg.MailLinks())
	if err != nil {
		return nil, err
	}
	// The sender exists before the domain service, so that the flows can be
	// given its Notify; it starts with the other background work below.
	transport, err := MailTransport(cfg, logger)
	if err != nil {
		return nil, err
	}
	// The sender counts its statements on a Store of its own: its polling is
	// background work, and Store.Queries is what proves that a request path
	// sends no query. tollgate_db_queries_total adds both.
	mailStore := db.NewStore(dbx)
	sender := mail.NewSender(mail.SenderConfig{
		Store:     mailStore,
		Transport: transport,
		Logger:    logger,
		Events:    met,
		RetryFor:  cfg.Mail.RetryFor,
		Now:       now,
	})
	svc, err := auth.NewService(ctx, auth.Config{
		Events:            met,
		RefreshTTL:        cfg.RefreshTTL,
		RefreshReuseGrace: cfg.RefreshReuseGrace,
		SignupOpen:        cfg.SignupOpen,
		SessionsPerUser:   cfg.SessionsPerUser,
		MFAKey:            cfg.MFAEncryptionKey,
		TOTPIssuer:        cfg.TOTPIssuer,
		EmailRequired:     cfg.Email.Required,
		VerificationTTL:   cfg.Email.VerificationTTL,
		ResetTTL:          cfg.Email.ResetTTL,
		Mail:              composer,
		MailQueued:        sender.Notify,
		Passkeys:          auth.PasskeyConfig{RPID: cfg.WebAuthnRPID, Origins: cfg.WebAuthnOrigins},
		Limits: auth.Limits{
			LoginPerUserIP:     auth.Limit{Max: cfg.LoginFailuresPerUserIP, Window: cfg.LoginFailureWindow},
			LoginPerIP:         auth.Limit{Max: cfg.LoginFailuresPerIP, Window: cfg.LoginFailureWindow},
			LoginAttemptsPerIP: auth.Limit{Max: cfg.LoginAttemptsPerIPPerMinute, Window: time.Minute},
			RegisterPerIP:      auth.Limit{Max: cfg.RegisterPerIPPerHour, Window: time.Hour},
			RefreshPerIP:       auth.Limit{Max: cfg.RefreshPerIPPerMinute, Window: time.Minute},
			MailPerAddress:     auth.Limit{Max: cfg.Email.PerAddressPerHour, Window: time.Hour},
			MailPerIP:          auth.Limit{Max: cfg.Email.PerIPPerHour, Window: time.Hour},
		},
	}, store, tokens, hasher, logger, now)
	if err != nil {
		return nil, err
	}
	if cfg.AdminUsername != "" {
		created, err := svc.EnsureAdmin(ctx, cfg.AdminUsername, cfg.AdminPassword)
		var authErr *auth.Error
		if errors.As(err, &authErr) {
			return nil, fmt.Errorf("config: ADMIN_USERNAME/ADMIN_PASSWORD: %s", authErr.Message)
		}
		if err != nil {
			return nil, fmt.Errorf("create admin: %w", err)
		}
		if created {
			logger.Info("created admin user", "username", cfg.AdminUsername)
		}
	}

	notes := note.NewService(store, now, dbx.DriverName() != db.Postgres)
	var fed *auth.Federation
	if len(cfg.OIDC.Providers) > 0 {
		fed = auth.NewFederation(svc, auth.FederationConfig{Providers: oidcProviders(cfg), RedirectURIs: cfg.OIDC.RedirectURIs,
			PublicURL: cfg.PublicURL, Timeout: cfg.OIDC.Timeout, Events: met})
		met.watchProviders(fed.Providers())
	}

	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	s := &Server{Auth: svc, Store: store, Notes: notes, Hasher: hasher, Sockets: graph.NewSockets(), Mail: sender,
		listening: make(chan struct{}), stop: stop, done: make(chan struct{})}
	m := auth.Maintenance{Service: svc, Logger: logger, Resync: resyncInterval, Cleanup: cleanupInterval}
	var wg sync.WaitGroup
	var firstConnect sync.Once
	wg.Go(func() { m.Run(bg) })
	wg.Go(func() { sender.Run(bg) })
	if fed != nil {
		// Discovery runs in the background: a provider that is down never
		// holds the server's start (its flows answer 503 meanwhile).
		wg.Go(func() { fed.Run(bg) })
	}
	if dbx.DriverName() != db.Postgres {
		close(s.listening) // one SQLite file, one instance: nothing to hear
	} else {
		// Every instance hears of every other's revocations at once.
		wg.Go(func() {
			db.Listen(bg, cfg.DatabaseURL, map[string]func(string){
				db.RevocationChannel: svc.HandleNotice,
				db.NoteChannel: func(payload string) {
					if err := notes.HandleNotice(bg, payload); err != nil && bg.Err() == nil {
						logger.Warn("note delivery failed", "error", err.Error())
					}
				},
			}, func() {
				// (Re)connected: whatever was announced while not listening was
				// missed. After a reconnect the resync runs on Maintenance's
				// goroutine, so that notifications never wait behind it; the
				// first one runs here, before Listening says that this
				// instance hears every revocation.
				first := false
				firstConnect.Do(func() {
					first = true
					if err := svc.SyncRevocations(bg); err != nil && bg.Err() == nil {
						logger.Warn("revocation resync failed", "error", err.Error())
					}
					close(s.listening)
				})
				if !first {
					svc.RequestResync()
				}
			}, logger)
		})
	}
	go func() {
		wg.Wait()
		close(s.done)
	}()

	gql := graph.NewHandler(&graph.Resolver{Auth: svc, Notes: notes, Federation: fed}, graph.Options{
		Logger:             logger,
		Introspection:      cfg.Introspection,
		SecureCookies:      cfg.Production,
		Origins:            cfg.CORSOrigins,
		Metrics:            met.reg,
		WSConnectionsPerIP: cfg.WSConnectionsPerIP,
		Sockets:            s.Sockets,
		Limits: graph.Limits{
			MaxDepth:      cfg.MaxDepth,
			MaxComplexity: cfg.MaxComplexity,
			MaxFields:     maxFields,
			MaxAliases:    maxAliases,
			MaxQueryBytes: maxQueryBytes,
			// The answers in flight hold at most eight of the largest.
			MaxResponseBytes: cfg.MaxResponseBytes,
		},
	})
	met.watch(svc, hasher, store, mailStore, notes, dbx.DB, now)
	metricsHandler := met.handler()
	if cfg.MetricsAddr != "" {
		// The counts tell how busy the server is and how its users fare:
		// on a listener of their own they need no rule at the proxy.
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", metricsHandler)
		s.Metrics, metricsHandler = mux, nil
	}
	s.Handler = New(Options{
		Logger:         logger,
		GraphQL:        gql,
		Auth:           svc,
		JWKS:           tokens.JWKS(),
		Ready:          store.Ping,
		Playground:     cfg.Playground,
		MaxBodyBytes:   cfg.MaxBodyBytes,
		TrustedProxies: cfg.TrustedProxies,
		CORSOrigins:    cfg.CORSOrigins,
		Metrics:        metricsHandler,
		Schema:         schemaHandler(cfg.Introspection),
		Federation:     fed,
		SecureCookies:  cfg.Production,
	})
	return s, nil
}

// signingKeys returns the signing key, then the previous keys that still
// verify. Without a configured key (development only), a key is generated
// once and kept in the database, so that tokens survive a restart and every
// instance sharing the database signs alike.
func signingKeys(ctx context.Context, cfg config.Config, store *db.Store, now func() time.Time) ([]auth.Key, error) {
	var keys []auth.Key
	switch cfg.JWTAlg {
	case "EdDSA":
		priv := cfg.JWTPrivateKey
		if priv == nil {
			seed, err := generatedKey(ctx, cfg, store, "EdDSA", now)
			if err != nil {
				return nil, err
			}
			if len(seed) != ed25519.SeedSize {
				return nil, errors.New("generated EdDSA key: wrong size")
			}
			priv = ed25519.NewKeyFromSeed(seed)
		}
		k, err := auth.NewEd25519Key(priv)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
		for _, pub := range cfg.JWTPreviousKeys {
			k, err := auth.NewEd25519VerifyKey(pub)
			if err != nil {
				return nil, err
			}
			keys = append(keys, k)
		}
	default:
		secret := cfg.JWTSecret
		if secret == nil {
			var err error
			if secret, err = generatedKey(ctx, cfg, store, "HS256", now); err != nil {
				return nil, err
			}
		}
		k, err := auth.NewHMACKey(secret)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
		if cfg.JWTPreviousSecret != nil {
			k, err := auth.NewHMACKey(cfg.JWTPreviousSecret)
			if err != nil {
				return nil, err
			}
			keys = append(keys, k)
		}
	}
	return dedupe(keys), nil
}

// dedupe drops a previous key that is the signing key again (a rotation
// half-undone): it verifies already.
func dedupe(keys []auth.Key) []auth.Key {
	seen := map[string]bool{}
	out := keys[:0]
	for _, k := range keys {
		if !seen[k.ID()] {
			seen[k.ID()] = true
			out = append(out, k)
		}
	}
	return out
}

// generatedKey returns the 32 random bytes kept in the database for alg.
func generatedKey(ctx context.Context, cfg config.Config, store *db.Store, alg string, now func() time.Time) ([]byte, error) {
	if cfg.Production {
		return nil, fmt.Errorf("config: APP_ENV=production needs an explicit %s key", alg)
	}
	kept, err := store.GeneratedKey(ctx, alg, hex.EncodeToString(auth.NewRandomHMACSecret()), now().UTC())
	if err != nil {
		return nil, err
	}
	key, err := hex.DecodeString(kept)
	if err != nil {
		return nil, fmt.Errorf("generated %s key: %w", alg, err)
	}
	return key, nil
}

// MailTransport is the transport of cfg.Mail: SMTP to SMTP_URL, or the log
// (development, or MAIL_TRANSPORT=log).
func MailTransport(cfg config.Config, logger *slog.Logger) (mail.Transport, error) {
	if cfg.Mail.Transport != "smtp" {
		logger.Info("mail goes to the log, links included, and is not sent (no SMTP_URL, or MAIL_TRANSPORT=log)")
		return mail.LogTransport{Logger: logger}, nil
	}
	// SMTP's String leaves the password out.
	logger.Info("mail goes through SMTP", "relay", cfg.Mail.SMTP.String(), "from", cfg.Mail.From.Address)
	t, err := mail.NewSMTPTransport(mail.SMTPOptions{
		Host:        cfg.Mail.SMTP.Host,
		Port:        cfg.Mail.SMTP.Port,
		ImplicitTLS: cfg.Mail.SMTP.ImplicitTLS,
		Username:    cfg.Mail.SMTP.Username,
		Password:    cfg.Mail.SMTP.Password,
		From:        cfg.Mail.From,
	})
	if err != nil {
		return nil, fmt.Errorf("config: SMTP_URL: %w", err)
	}
	return t, nil
}

// schemaHandler serves the SDL where introspection would tell the same.
func schemaHandler(introspection bool) http.Handler {
	if !introspection {
		return nil
	}
	return graph.SchemaHandler()
}

// oidcProviders are the providers of cfg, for the Federation.
func oidcProviders(cfg config.Config) []auth.OIDCProvider {
	out := make([]auth.OIDCProvider, 0, len(cfg.OIDC.Providers))
	for _, p := range cfg.OIDC.Providers {
		out = append(out, auth.OIDCProvider{Name: p.Name, Issuer: p.Issuer, ClientID: p.ClientID, ClientSecret: p.ClientSecret, Scopes: p.Scopes})
	}
	return out
}
