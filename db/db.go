// Package db is Tollgate's storage: it opens PostgreSQL or the embedded SQLite
// database, applies the embedded migrations, and runs every query through sqlx.
// It knows nothing of GraphQL or of tokens; driver errors are translated here into
// ErrNotFound and ErrConflict so that no caller ever inspects driver types.
package db

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Errors returned by Store methods in place of driver errors.
var (
	// ErrNotFound means that no row matched.
	ErrNotFound = errors.New("not found")
	// ErrConflict means that a unique constraint refused the write.
	ErrConflict = errors.New("conflict")
	// ErrLimitReached means that the write would pass a limit on what one user may keep.
	ErrLimitReached = errors.New("limit reached")
)

// Driver names as registered with database/sql.
const (
	Postgres = "postgres"
	SQLite   = "sqlite"
)

// Open connects to the database named by rawURL and checks that it answers:
// "postgres://…" (or "postgresql://…") uses PostgreSQL through lib/pq;
// "sqlite:PATH" or "sqlite::memory:" the embedded SQLite database, with WAL,
// a busy timeout and foreign keys on. The parent directory of PATH is created.
//
// maxConns bounds the pool of connections; 0 means DefaultMaxConns for the
// database. An in-memory SQLite database always has exactly one.
func Open(ctx context.Context, rawURL string, maxConns int) (*sqlx.DB, error) {
	driver, dsn, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if driver == SQLite && !strings.Contains(dsn, "mode=memory") {
		path := strings.TrimPrefix(strings.SplitN(dsn, "?", 2)[0], "file:")
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("create database directory: %w", err)
		}
	}
	dbx, err := sqlx.Open(driver, dsn)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	switch {
	case driver == SQLite && strings.Contains(dsn, "mode=memory"):
		// Every connection to ":memory:" is a database of its own: keep exactly one.
		dbx.SetMaxOpenConns(1)
		dbx.SetConnMaxIdleTime(0)
		dbx.SetConnMaxLifetime(0)
	case driver == SQLite:
		dbx.SetMaxOpenConns(cmp.Or(maxConns, DefaultMaxConns(SQLite)))
		dbx.SetMaxIdleConns(cmp.Or(maxConns, DefaultMaxConns(SQLite)))
	default:
		n := cmp.Or(maxConns, DefaultMaxConns(Postgres))
		dbx.SetMaxOpenConns(n)
		dbx.SetMaxIdleConns(n)
		dbx.SetConnMaxIdleTime(5 * time.Minute)
	}
	if err := dbx.PingContext(ctx); err != nil {
		dbx.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return dbx, nil
}

// DefaultMaxConns is the size of the connection pool when DATABASE_MAX_CONNS
// is not set, chosen from refreshToken under load (bench/README.md):
//
//   - SQLite has one writer at a time. Writers beyond the one holding the
//     lock wait in SQLite's busy handler, which sleeps and polls; two
//     connections (a writer, and a reader or the next writer) let the rest
//     queue in database/sql instead. From 8 connections to 2, refreshToken's
//     p99 fell from 584 to 245 ms at the same throughput.
//   - PostgreSQL: 5, 10, 20 and 40 connections gave the same throughput
//     within the noise on 2 cores; 20 leaves room for a larger server while
//     five instances stay under PostgreSQL's default max_connections (100).
func DefaultMaxConns(driver string) int {
	if driver == SQLite {
		return 2
	}
	return 20
}

// parseURL turns a DATABASE_URL into a driver name and a driver DSN.
func parseURL(rawURL string) (driver, dsn string, err error) {
	switch {
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		if _, err := url.Parse(rawURL); err != nil {
			// url.Error quotes the URL, password included: say only what is wrong.
			return "", "", errors.New("not a valid postgres:// URL")
		}
		return Postgres, rawURL, nil
	case rawURL == "sqlite::memory:":
		// A named in-memory database, so that a second Open in the same process
		// (tests) does not share it by accident.
		return SQLite, "file:" + randomName() + "?mode=memory" + sqliteParams, nil
	case strings.HasPrefix(rawURL, "sqlite:"):
		path := strings.TrimPrefix(rawURL, "sqlite:")
		if path == "" || strings.ContainsAny(path, "?#") {
			return "", "", errors.New("sqlite: needs a file path after the colon (sqlite:data/app.db) or sqlite::memory: itself")
		}
		return SQLite, "file:" + path + "?" + sqliteParams[1:], nil
	default:
		return "", "", errors.New("must be postgres://…, sqlite:PATH or sqlite::memory: itself")
	}
}

// sqliteParams: WAL lets readers run beside the writer; the busy timeout makes a
// writer wait for the lock instead of failing; "immediate" transactions take the
// write lock at BEGIN, so two read-then-write transactions queue instead of
// deadlocking; times are written in a format that sorts as text.
const sqliteParams = "&_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)" +
	"&_pragma=synchronous(NORMAL)&_txlock=immediate&_time_format=sqlite"

// Migrate applies every embedded migration that the database does not have yet.
// On PostgreSQL an advisory lock lets several instances start at once.
func Migrate(ctx context.Context, dbx *sqlx.DB) error {
	fsys := Migrations()
	dialect := goose.DialectSQLite3
	var opts []goose.ProviderOption
	if dbx.DriverName() == Postgres {
		dialect = goose.DialectPostgres
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return fmt.Errorf("migration lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	provider, err := goose.NewProvider(dialect, dbx.DB, fsys, opts...)
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	if _, err := provider.Up(ctx); err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	return nil
}

// Migrations returns the embedded migration files (test templates hash them to
// know when to rebuild).
func Migrations() fs.FS {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		panic(err) // the directory is embedded above: this cannot happen
	}
	return fsys
}

func randomName() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "mem" + hex.EncodeToString(b)
}

var errNoRows = sql.ErrNoRows

// translate maps driver errors to ErrNotFound and ErrConflict and leaves others as they are.
func translate(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, errNoRows) {
		return ErrNotFound
	}
	var pqErr *pq.Error
	if errors.As(err, &pqErr) && pqErr.Code == "23505" { // unique_violation
		return fmt.Errorf("%w: %s", ErrConflict, pqErr.Constraint)
	}
	var liteErr *sqlite.Error
	if errors.As(err, &liteErr) {
		switch liteErr.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return ErrConflict
		}
	}
	return err
}
