package api

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/jmoiron/sqlx"

	"tollgate/auth"
	"tollgate/config"
	"tollgate/db"
	"tollgate/graph"
)

// NewServer wires the whole server on an open, migrated database: signing
// keys, the domain service, the GraphQL handler and the routes. It creates
// the ADMIN of ADMIN_USERNAME/ADMIN_PASSWORD if missing. now is the clock of
// every token and timestamp.
func NewServer(ctx context.Context, cfg config.Config, dbx *sqlx.DB, logger *slog.Logger, now func() time.Time) (http.Handler, error) {
	store := db.NewStore(dbx)
	key, err := signingKey(ctx, cfg, store, now)
	if err != nil {
		return nil, err
	}
	tokens, err := auth.NewTokenIssuer(auth.TokenConfig{
		Issuer:   cfg.Issuer,
		Audience: cfg.Audience,
		TTL:      cfg.AccessTTL,
		Leeway:   cfg.JWTLeeway,
	}, now, key)
	if err != nil {
		return nil, err
	}
	hasher, err := auth.NewHasher(auth.PasswordParams)
	if err != nil {
		return nil, err
	}
	svc := auth.NewService(auth.Config{RefreshTTL: cfg.RefreshTTL, SignupOpen: cfg.SignupOpen}, store, tokens, hasher, now)
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
	gql := graph.NewHandler(&graph.Resolver{Auth: svc}, graph.Options{Logger: logger, Introspection: cfg.Introspection})
	return New(Options{
		Logger:       logger,
		GraphQL:      gql,
		Tokens:       tokens,
		Ready:        store.Ping,
		Playground:   cfg.Playground,
		MaxBodyBytes: cfg.MaxBodyBytes,
	}), nil
}

// signingKey returns the configured HS256 key or, in development, the key
// generated once and kept in the database so that tokens survive a restart.
func signingKey(ctx context.Context, cfg config.Config, store *db.Store, now func() time.Time) (auth.Key, error) {
	secret := cfg.JWTSecret
	if secret == nil {
		if cfg.Production {
			return nil, errors.New("config: JWT_SECRET is required when APP_ENV=production")
		}
		kept, err := store.GeneratedKey(ctx, "HS256", hex.EncodeToString(auth.NewRandomHMACSecret()), now().UTC())
		if err != nil {
			return nil, err
		}
		if secret, err = hex.DecodeString(kept); err != nil {
			return nil, fmt.Errorf("generated HS256 key: %w", err)
		}
	}
	return auth.NewHMACKey(secret)
}
