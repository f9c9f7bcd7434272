package db_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"tollgate/db"
	"tollgate/db/dbtest"
)

func queueMails(t *testing.T, store *db.Store, now time.Time, ids ...string) {
	t.Helper()
	for _, id := range ids {
		m := db.OutboxMail{ID: id, Kind: "verify_email", Recipient: id + "@example.com", Subject: "s", Text: "t " + id, HTML: "h " + id, CreatedAt: now}
		if err := store.EnqueueMail(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
}

func claimIDs(t *testing.T, store *db.Store, now time.Time, limit int) []string {
	t.Helper()
	got, err := store.ClaimMail(context.Background(), now, time.Minute, limit)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(got))
	for i, m := range got {
		ids[i] = m.ID
		if !m.LockedUntil.Equal(now.Add(time.Minute)) {
			t.Errorf("%s locked until %s, want %s", m.ID, m.LockedUntil, now.Add(time.Minute))
		}
	}
	return ids
}

// A claim takes due rows oldest first, up to its limit; a claimed row is
// not taken again until its lease runs out; a released, retried or finished
// row behaves as its state says.
func TestClaimMail_LeaseRetryAndFinish(t *testing.T) {
	for _, kind := range dbtest.Kinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			store := db.NewStore(dbtest.Open(t, kind))
			now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			queueMails(t, store, now, "a", "b", "c")
			queueMails(t, store, now.Add(time.Second), "d")

			if got := fmt.Sprint(claimIDs(t, store, now, 2)); got != "[a b]" {
				t.Fatalf("first claim %s, want [a b]", got)
			}
			// d is not due yet at now; a and b are leased.
			if got := fmt.Sprint(claimIDs(t, store, now, 10)); got != "[c]" {
				t.Fatalf("second claim %s, want [c]", got)
			}
			if got := claimIDs(t, store, now.Add(30*time.Second), 10); fmt.Sprint(got) != "[d]" {
				t.Fatalf("third claim %v, want [d]", got)
			}
			// A sender that died: its lease runs out and the rows are taken again.
			if got := fmt.Sprint(claimIDs(t, store, now.Add(time.Minute), 10)); got != "[a b c]" {
				t.Fatalf("claim after the lease %s, want [a b c]", got)
			}

			at := now.Add(2 * time.Minute)
			if err := store.MarkMailSent(ctx, "a", at); err != nil {
				t.Fatal(err)
			}
			if err := store.MarkMailFailed(ctx, "b", at, "550 5.1.1 no such user"); err != nil {
				t.Fatal(err)
			}
			if err := store.MarkMailRetry(ctx, "c", at.Add(time.Hour), "451 4.7.1 greylisted"); err != nil {
				t.Fatal(err)
			}
			if err := store.ReleaseMail(ctx, []string{"d"}); err != nil {
				t.Fatal(err)
			}
			// Sent and failed rows lose their bodies; a retried row keeps its body.
			for id, want := range map[string][2]string{"a": {"", ""}, "b": {"", ""}, "c": {"t c", "h c"}} {
				e, err := store.OutboxEntry(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if e.Text != want[0] || e.HTML != want[1] || e.Attempts != 1 || e.Locked != nil {
					t.Errorf("%s: %+v", id, e)
				}
			}
			if e, _ := store.OutboxEntry(ctx, "b"); e.FailedAt == nil || e.LastError == nil || *e.LastError != "550 5.1.1 no such user" {
				t.Errorf("b: %+v", e)
			}
			// Marking a finished row again changes nothing.
			if err := store.MarkMailRetry(ctx, "a", at, "late"); err != nil {
				t.Fatal(err)
			}
			if e, _ := store.OutboxEntry(ctx, "a"); e.SentAt == nil || e.LastError != nil || e.Attempts != 1 {
				t.Errorf("a after a late retry: %+v", e)
			}

			// d was released: due at once. c is due in an hour. a and b never again.
			if got := fmt.Sprint(claimIDs(t, store, at, 10)); got != "[d]" {
				t.Fatalf("claim after release %s, want [d]", got)
			}
			if got := fmt.Sprint(claimIDs(t, store, at.Add(2*time.Hour), 10)); got != "[c d]" {
				t.Fatalf("claim two hours later %s, want [c d]", got)
			}

			st, err := store.OutboxStats(ctx)
			if err != nil || st.Depth != 2 || !st.Oldest.Equal(now) {
				t.Errorf("stats %+v, %v; want 2 undelivered, the oldest from %s", st, err, now)
			}
			n, err := store.DeleteOldMail(ctx, at.Add(time.Second))
			if err != nil || n != 2 {
				t.Errorf("DeleteOldMail = %d, %v; want the sent and the failed row", n, err)
			}
			if _, err := store.OutboxEntry(ctx, "a"); err == nil {
				t.Error("the sent row is still there")
			}
			for _, id := range []string{"a", "b", "c", "d"} {
				store.MarkMailSent(ctx, id, at)
			}
			if st, err := store.OutboxStats(ctx); err != nil || st.Depth != 0 || !st.Oldest.IsZero() {
				t.Errorf("stats of an empty outbox %+v, %v", st, err)
			}
		})
	}
}
