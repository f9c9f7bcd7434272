package db_test

import (
	"context"
	"testing"

	"tollgate/db"
	"tollgate/db/dbtest"
)

// The pool has DATABASE_MAX_CONNS connections at most, or the database's
// default; an in-memory SQLite database keeps exactly one whatever is asked.
func TestOpen_PoolSize(t *testing.T) {
	ctx := context.Background()
	for _, kind := range dbtest.Kinds {
		t.Run(kind, func(t *testing.T) {
			url := dbtest.URL(t, kind)
			for asked, want := range map[int]int{0: db.DefaultMaxConns(kind), 3: 3} {
				dbx, err := db.Open(ctx, url, asked)
				if err != nil {
					t.Fatal(err)
				}
				if got := dbx.Stats().MaxOpenConnections; got != want {
					t.Errorf("maxConns %d: pool of %d, want %d", asked, got, want)
				}
				dbx.Close()
			}
		})
	}
	dbx, err := db.Open(ctx, "sqlite::memory:", 5)
	if err != nil {
		t.Fatal(err)
	}
	defer dbx.Close()
	if got := dbx.Stats().MaxOpenConnections; got != 1 {
		t.Errorf("in memory: pool of %d, want 1", got)
	}
}
