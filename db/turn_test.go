package db_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"tollgate/db"
	"tollgate/db/dbtest"
)

// Refreshes take turns: no more of them hold one at once than the pool has
// connections, every one gets its turn, and one that gives up while it waits
// leaves with its context's error and takes no turn from the others.
func TestTurns_NoMoreThanThePoolAndLeftOnCancel(t *testing.T) {
	for _, kind := range dbtest.Kinds {
		t.Run(kind, func(t *testing.T) {
			dbx := dbtest.Open(t, kind)
			store := db.NewStore(dbx)
			n := dbx.Stats().MaxOpenConnections
			if n <= 0 {
				t.Fatalf("the test database's pool is unbounded (%d): a turn would never wait", n)
			}

			// Every turn taken: the next caller waits until it gives up.
			ends := make([]func(), n)
			for i := range ends {
				end, err := store.Turn(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				ends[i] = end
			}
			ctx, cancel := context.WithCancel(context.Background())
			waited := make(chan error, 1)
			go func() {
				end, err := store.Turn(ctx)
				if err == nil {
					end()
				}
				waited <- err
			}()
			cancel()
			if err := <-waited; !errors.Is(err, context.Canceled) {
				t.Fatalf("a turn awaited with a cancelled context: err = %v, want context.Canceled", err)
			}
			for _, end := range ends {
				end()
			}

			// Many refreshes at once: never more than n in their turn, all served.
			const callers = 50
			var inTurn, most, served atomic.Int64
			var wg sync.WaitGroup
			for range callers {
				wg.Go(func() {
					end, err := store.Turn(context.Background())
					if err != nil {
						t.Error(err)
						return
					}
					defer end()
					now := inTurn.Add(1)
					for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
					}
					// A statement's worth of work in the turn, so that the others pile up.
					if err := dbx.PingContext(context.Background()); err != nil {
						t.Error(err)
					}
					inTurn.Add(-1)
					served.Add(1)
				})
			}
			wg.Wait()
			if got := most.Load(); got > int64(n) {
				t.Errorf("%d refreshes held a turn at once, with %d connections", got, n)
			}
			if got := served.Load(); got != callers {
				t.Errorf("%d of %d callers got a turn", got, callers)
			}
		})
	}
}
