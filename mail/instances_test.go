package mail_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"tollgate/db"
	"tollgate/db/dbtest"
	"tollgate/mail"
	"tollgate/mail/mailtest"
)

// Two instances on one database (two Stores, each with its own pool, as two
// processes would have) and 200 queued mails: each mail reaches the SMTP
// server exactly once, counted there by Message-ID.
func TestSender_TwoInstancesDeliverEachOnce(t *testing.T) {
	forEachKind(t, func(t *testing.T, kind string) {
		url := dbtest.URL(t, kind)
		open := func() *db.Store {
			dbx, err := db.Open(context.Background(), url, 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { dbx.Close() })
			if err := db.Migrate(context.Background(), dbx); err != nil {
				t.Fatal(err)
			}
			return db.NewStore(dbx)
		}
		stores := []*db.Store{open(), open()}
		server := mailtest.NewServer(t)
		const n = 200
		now := time.Now().UTC()
		for i := range n {
			enqueue(t, stores[0], fmt.Sprintf("m%03d", i), fmt.Sprintf("user%03d@example.com", i), now)
		}

		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		counts := make([]*outcomes, len(stores))
		for i, store := range stores {
			counts[i] = &outcomes{}
			s := mail.NewSender(mail.SenderConfig{
				Store: store, Transport: transportTo(t, server), Events: counts[i],
				// Small batches, so that the two claim against each other many times.
				Batch: 5, Poll: 20 * time.Millisecond,
			})
			wg.Go(func() { s.Run(ctx) })
		}
		server.Wait(n, time.Minute)
		cancel()
		wg.Wait()

		seen := map[string]int{}
		for _, m := range server.Messages() {
			seen[m.MessageID]++
		}
		if got := len(server.Messages()); got != n || len(seen) != n {
			t.Fatalf("%d messages with %d distinct Message-IDs arrived, want %d of each", got, len(seen), n)
		}
		for id, c := range seen {
			if c != 1 {
				t.Errorf("%s arrived %d times", id, c)
			}
		}
		st, err := stores[1].OutboxStats(context.Background())
		if err != nil || st.Depth != 0 {
			t.Errorf("outbox after delivery: %+v, %v", st, err)
		}
		total := 0
		for i, c := range counts {
			got := c.get()
			if got[mail.OutcomeRetried] != 0 || got[mail.OutcomeFailed] != 0 {
				t.Errorf("instance %d: outcomes %v", i, got)
			}
			total += got[mail.OutcomeSent]
			t.Logf("instance %d sent %d", i, got[mail.OutcomeSent])
		}
		if total != n {
			t.Errorf("the instances counted %d sent, want %d", total, n)
		}
	})
}

// Notify wakes a sender at once: with a poll of an hour, the mail still
// arrives as soon as it is queued.
func TestSender_NotifyWakesAtOnce(t *testing.T) {
	forEachKind(t, func(t *testing.T, kind string) {
		store := db.NewStore(dbtest.Open(t, kind))
		server := mailtest.NewServer(t)
		s := mail.NewSender(mail.SenderConfig{Store: store, Transport: transportTo(t, server), Poll: time.Hour})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { s.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
		for i := range 3 {
			enqueue(t, store, fmt.Sprint("m", i), "alice@example.com", time.Now().UTC())
			s.Notify()
			server.Wait(i+1, 30*time.Second)
		}
	})
}

// A sender stopped in the middle of a batch delivers the mail in hand,
// marks it, and hands the rest back at once: the next start takes them
// without waiting for the lease.
func TestSender_StopHandsBackTheRest(t *testing.T) {
	forEachKind(t, func(t *testing.T, kind string) {
		store := db.NewStore(dbtest.Open(t, kind))
		server := mailtest.NewServer(t)
		clk := newClock()
		for i := range 5 {
			enqueue(t, store, fmt.Sprint("m", i), "alice@example.com", clk.Now())
		}
		ctx, cancel := context.WithCancel(context.Background())
		stopAfterFirst := transportFunc(func(c context.Context, m db.OutboxMail) error {
			cancel() // the server shuts down while the first mail is being sent
			return transportTo(t, server).Send(c, m)
		})
		s := mail.NewSender(mail.SenderConfig{Store: store, Transport: stopAfterFirst, Now: clk.Now})
		if n, err := s.RunOnce(ctx); n != 5 || err != nil {
			t.Fatalf("RunOnce = %d, %v", n, err)
		}
		if got := len(server.Messages()); got != 1 {
			t.Fatalf("%d messages arrived, want the one in hand", got)
		}
		next := mail.NewSender(mail.SenderConfig{Store: store, Transport: transportTo(t, server), Now: clk.Now})
		if n, err := next.RunOnce(context.Background()); n != 4 || err != nil {
			t.Fatalf("the next start claimed %d, %v; want the 4 handed back", n, err)
		}
		if got := len(server.Messages()); got != 5 {
			t.Errorf("%d messages arrived, want 5", got)
		}
	})
}

type transportFunc func(context.Context, db.OutboxMail) error

func (f transportFunc) Send(ctx context.Context, m db.OutboxMail) error { return f(ctx, m) }
