package db_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pressly/goose/v3"

	"tollgate/db"
	"tollgate/db/dbtest"
)

// The second-factor migration goes down and up again on both databases,
// and sessions written before it get the level of a password alone.
func TestMigration00006_DownAndUp(t *testing.T) {
	for _, kind := range dbtest.Kinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			dbx := dbtest.Open(t, kind)
			dialect := goose.DialectSQLite3
			if kind == db.Postgres {
				dialect = goose.DialectPostgres
			}
			p, err := goose.NewProvider(dialect, dbx.DB, db.Migrations())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.DownTo(ctx, 5); err != nil {
				t.Fatalf("down: %v", err)
			}
			if _, err := dbx.Exec(`INSERT INTO users (id, username, password_hash, role, created_at) VALUES ('u1', 'alice', 'x', 'USER', CURRENT_TIMESTAMP)`); err != nil {
				t.Fatal(err)
			}
			if _, err := dbx.Exec(`INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at) VALUES ('s1', 'u1', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)`); err != nil {
				t.Fatal(err)
			}
			if _, err := p.Up(ctx); err != nil {
				t.Fatalf("up: %v", err)
			}
			var level struct {
				AAL string `db:"aal"`
				AMR string `db:"amr"`
			}
			if err := dbx.Get(&level, `SELECT aal, amr FROM sessions WHERE id = 's1'`); err != nil || level.AAL != "aal1" || level.AMR != "pwd" {
				t.Fatalf("an older session: %+v, %v; want aal1, pwd", level, err)
			}
		})
	}
}

func TestMigration00008_DownAndUp(t *testing.T) {
	for _, kind := range dbtest.Kinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			dbx := dbtest.Open(t, kind)
			dialect := goose.DialectSQLite3
			if kind == db.Postgres {
				dialect = goose.DialectPostgres
			}
			p, err := goose.NewProvider(dialect, dbx.DB, db.Migrations())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := dbx.Exec(`INSERT INTO users (id, username, password_hash, role, created_at, email, email_key)
				VALUES ('u0', 'zoe', 'x', 'USER', CURRENT_TIMESTAMP, 'Zoe@Example.com', 'zoe@example.com')`); err != nil {
				t.Fatal(err)
			}
			if _, err := p.DownTo(ctx, 7); err != nil {
				t.Fatalf("down: %v", err)
			}
			// Down dropped the columns and the table, and kept the user.
			if _, err := dbx.Exec(`SELECT email FROM users`); err == nil {
				t.Fatal("users.email survived the down migration")
			}
			if _, err := dbx.Exec(`SELECT 1 FROM email_tokens`); err == nil {
				t.Fatal("email_tokens survived the down migration")
			}
			if _, err := dbx.Exec(`INSERT INTO users (id, username, password_hash, role, created_at) VALUES ('u1', 'alice', 'x', 'USER', CURRENT_TIMESTAMP)`); err != nil {
				t.Fatal(err)
			}
			if _, err := p.Up(ctx); err != nil {
				t.Fatalf("up: %v", err)
			}
			var n int
			if err := dbx.Get(&n, `SELECT count(*) FROM users WHERE email IS NULL AND email_key IS NULL AND email_verified_at IS NULL`); err != nil || n != 2 {
				t.Fatalf("users without an address after up: %d, %v; want 2", n, err)
			}
			// Many users have no address; an address is held once.
			if _, err := dbx.Exec(`UPDATE users SET email = 'a@example.com', email_key = 'a@example.com' WHERE id = 'u0'`); err != nil {
				t.Fatal(err)
			}
			if _, err := dbx.Exec(`UPDATE users SET email = 'A@example.com', email_key = 'a@example.com' WHERE id = 'u1'`); err == nil {
				t.Fatal("two users hold one address key")
			}
		})
	}
}

// Migration 00011 trades two indexes for one, both ways, on both databases.
func TestMigration00011_DownAndUp(t *testing.T) {
	for _, kind := range dbtest.Kinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			dbx := dbtest.Open(t, kind)
			dialect, list := goose.DialectSQLite3, `SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%' ORDER BY name`
			if kind == db.Postgres {
				dialect, list = goose.DialectPostgres, `SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() ORDER BY indexname`
			}
			p, err := goose.NewProvider(dialect, dbx.DB, db.Migrations())
			if err != nil {
				t.Fatal(err)
			}
			indexes := func() string {
				var names []string
				if err := dbx.Select(&names, list); err != nil {
					t.Fatal(err)
				}
				return strings.Join(names, " ")
			}
			up := indexes()
			for _, want := range []string{"refresh_tokens_session_id_rotated_at"} {
				if !strings.Contains(up, want) {
					t.Fatalf("after up, no %s: %s", want, up)
				}
			}
			for _, gone := range []string{"sessions_expires_at", "refresh_tokens_session_id "} {
				if strings.Contains(up+" ", gone+" ") {
					t.Fatalf("after up, still %s: %s", gone, up)
				}
			}
			if _, err := p.DownTo(ctx, 10); err != nil {
				t.Fatalf("down: %v", err)
			}
			down := indexes() + " "
			if !strings.Contains(down, "sessions_expires_at ") || !strings.Contains(down, "refresh_tokens_session_id ") || strings.Contains(down, "session_id_rotated_at") {
				t.Fatalf("after down: %s", down)
			}
			if _, err := p.Up(ctx); err != nil {
				t.Fatalf("up: %v", err)
			}
			if again := indexes(); again != up {
				t.Fatalf("up again: %s, want %s", again, up)
			}
		})
	}
}
