package api_test

import (
	"testing"

	"tollgate/auth"
	"tollgate/db"
	"tollgate/db/dbtest"
)

// PASSWORD_HASH_CONCURRENCY sizes the server's hashing pool; unset, it
// leaves a core to the request path.
func TestPasswordHashConcurrency_SizesThePool(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, db.SQLite), map[string]string{"PASSWORD_HASH_CONCURRENCY": "3"})
	if got := s.App.Hasher.Concurrency(); got != 3 {
		t.Fatalf("PASSWORD_HASH_CONCURRENCY=3: pool of %d", got)
	}
	s = newTestServer(t, dbtest.URL(t, db.SQLite), nil)
	if got, want := s.App.Hasher.Concurrency(), auth.DefaultHashConcurrency(); got != want {
		t.Fatalf("unset: pool of %d, want %d", got, want)
	}
}
