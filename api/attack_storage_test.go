package api_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tollgate/auth"
	"tollgate/db/dbtest"
)

// Every refused login once stored a row, so refused traffic from one address
// grew the table at the rate requests arrived. Throttling storage is now
// bounded by the keys counted in a window: 10,000 refused attempts with
// distinct usernames from one address leave a handful of rows, and each
// row goes when its window ends.
func TestAttack_RefusedAttemptsFillTheThrottlingTable(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		ctx := auth.NewClientContext(context.Background(), auth.Client{IP: "203.0.113.7", RequestID: "attack"})
		// 60 attempts a minute are allowed; everything after is refused.
		// Sixteen at a time, as an attacker would (and so that PostgreSQL
		// commits them in groups).
		var refused atomic.Int64
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Go(func() {
				for i := w; i < 10_000; i += 16 {
					_, err := s.App.Auth.Login(ctx, fmt.Sprintf("user%d", i), "wrong password")
					var authErr *auth.Error
					if errors.As(err, &authErr) && authErr.Code == auth.CodeRateLimited {
						refused.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if n := refused.Load(); n < 9_900 {
			t.Fatalf("only %d of 10,000 attempts were refused", n)
		}
		// The attempts bucket, the address's failures, and one bucket per
		// username that failed before the address was throttled (50).
		if n := s.count(t, `SELECT count(*) FROM rate_limits`); n > 60 {
			t.Errorf("%d rows after 10,000 refused attempts", n)
		}
		t.Logf("rate_limit_rows_after_10k_refused=%d", s.count(t, `SELECT count(*) FROM rate_limits`))

		// Once every window has ended, cleanup leaves nothing.
		s.Clock.Advance(16 * time.Minute)
		if _, err := s.App.Auth.DeleteExpired(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := s.count(t, `SELECT count(*) FROM rate_limits`); n != 0 {
			t.Errorf("%d rows outlive their windows", n)
		}
	})
}
