package db_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"tollgate/db"
	"tollgate/db/dbtest"
)

// Listen calls onReconnect only once LISTEN has taken effect: a notice sent
// from inside onReconnect is heard. The catch-up resync relies on it: run
// before LISTEN took effect, it would leave a gap in which a revocation is
// neither heard nor read until the next periodic resync. (pq connects in the
// background; its Listen returns once connected.)
func TestListen_CatchUpRunsOnceListeningTakesEffect(t *testing.T) {
	url := dbtest.URL(t, "postgres")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	other, err := db.Open(ctx, url, 1) // the same database: NOTIFY does not cross databases
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	heard := make(chan string, 1)
	sent := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		db.Listen(ctx, url, map[string]func(string){
			db.RevocationChannel: func(payload string) { heard <- payload },
		}, func() {
			_, err := other.Exec(`SELECT pg_notify($1, 'caught')`, db.RevocationChannel)
			sent <- err
		}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	select {
	case err := <-sent:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("onReconnect was not called within 10 s")
	}
	select {
	case p := <-heard:
		if p != "caught" {
			t.Errorf("heard %q, want caught", p)
		}
	case <-time.After(5 * time.Second):
		t.Error("a notice sent from onReconnect was never heard: LISTEN had not taken effect")
	}
	cancel()
	<-done
}
