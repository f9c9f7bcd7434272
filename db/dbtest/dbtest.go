// Package dbtest gives tests fresh, migrated databases: a SQLite file in a
// temporary directory, or a PostgreSQL database cloned from a migrated
// template (pgtestdb), so that tests never see each other's rows.
//
// PostgreSQL is found at TEST_POSTGRES_URL (default
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable). When it does
// not answer, its tests skip with a line that says so, unless
// TEST_POSTGRES_REQUIRED=1 (set by .ci/run), which makes that a failure.
package dbtest

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/peterldowns/pgtestdb"

	"tollgate/db"
)

// Kinds lists the databases every storage test runs against.
var Kinds = []string{db.SQLite, db.Postgres}

// ForEach runs f as a subtest per database kind, each with a fresh database
// URL. The subtests run in parallel with each other (never with another
// test's): each has its own database and server, and a test spends much of
// its time waiting on one database or the other, so the pair takes little
// longer than its slower half. A test that measures the whole process
// (allocations, goroutines) uses ForEachInTurn instead.
func ForEach(t *testing.T, f func(t *testing.T, url string)) {
	t.Helper()
	for _, kind := range Kinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			f(t, URL(t, kind))
		})
	}
}

// ForEachInTurn is ForEach with the subtests run one after the other.
func ForEachInTurn(t *testing.T, f func(t *testing.T, url string)) {
	t.Helper()
	for _, kind := range Kinds {
		t.Run(kind, func(t *testing.T) {
			f(t, URL(t, kind))
		})
	}
}

// URL returns the DATABASE_URL of a fresh, migrated database of kind.
func URL(t testing.TB, kind string) string {
	t.Helper()
	switch kind {
	case db.SQLite:
		return "sqlite:" + filepath.Join(t.TempDir(), "test.db")
	case db.Postgres:
		return PostgresURL(t)
	}
	t.Fatalf("unknown database kind %q", kind)
	return ""
}

// Open returns an open, migrated database of kind, closed when the test ends.
func Open(t testing.TB, kind string) *sqlx.DB {
	t.Helper()
	ctx := context.Background()
	dbx, err := db.Open(ctx, URL(t, kind), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dbx.Close() })
	if err := db.Migrate(ctx, dbx); err != nil {
		t.Fatal(err)
	}
	return dbx
}

const defaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// PostgresURL returns the URL of a fresh PostgreSQL database with every
// migration applied, dropped when the test passes.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("TEST_POSTGRES_URL")
	if base == "" {
		base = defaultPostgresURL
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("TEST_POSTGRES_URL: %v", err)
	}
	if err := ping(base); err != nil {
		if os.Getenv("TEST_POSTGRES_REQUIRED") == "1" {
			t.Fatalf("PostgreSQL at %s does not answer and TEST_POSTGRES_REQUIRED=1: %v", u.Host, err)
		}
		t.Skipf("SKIP: PostgreSQL at %s does not answer (%v); set TEST_POSTGRES_REQUIRED=1 to make this a failure", u.Host, err)
	}
	password, _ := u.User.Password()
	conf := pgtestdb.Config{
		DriverName:                "postgres",
		Host:                      u.Hostname(),
		Port:                      u.Port(),
		User:                      u.User.Username(),
		Password:                  password,
		Database:                  u.Path[1:],
		Options:                   u.RawQuery,
		ForceTerminateConnections: true,
	}
	// Tests check what is committed, not that it survives a power cut: a
	// commit that does not wait for its WAL to reach the disk makes the tests
	// that write thousands of rows several times faster. (lib/pq passes
	// options to the server as at start-up.)
	fresh, err := url.Parse(pgtestdb.Custom(t, conf, migrator{}).URL())
	if err != nil {
		t.Fatal(err)
	}
	q := fresh.Query()
	q.Set("options", "-c synchronous_commit=off")
	fresh.RawQuery = q.Encode()
	return fresh.String()
}

func ping(rawURL string) error {
	conn, err := sql.Open("postgres", rawURL)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return conn.PingContext(ctx)
}

// migrator builds pgtestdb's template database with Tollgate's own migrations.
type migrator struct{}

// Hash names the template: it changes whenever a migration file does.
func (migrator) Hash() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(db.Migrations(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(db.Migrations(), path)
		h.Write([]byte(path))
		h.Write(b)
		return err
	})
	return hex.EncodeToString(h.Sum(nil)), err
}

func (migrator) Migrate(ctx context.Context, conn *sql.DB, _ pgtestdb.Config) error {
	return db.Migrate(ctx, sqlx.NewDb(conn, db.Postgres))
}
