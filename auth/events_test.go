package auth

import (
	"context"
	"errors"
	"testing"
	"time"

	"tollgate/db"
)

// Payloads with and without the revocation's time both apply; anything
// else is unknown and applies nothing.
func TestParseNotice(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)
	for _, tc := range []struct {
		payload string
		want    notice
	}{
		{db.SessionNotice("s1", at), notice{kind: NoticeSession, id: "s1", sent: at, dated: true, usable: true}},
		{db.RoleNotice("u1", "ADMIN", at), notice{kind: NoticeRole, id: "u1", role: "ADMIN", sent: at, dated: true, usable: true}},
		{"session s1", notice{kind: NoticeSession, id: "s1", usable: true}},
		{"role u1 USER", notice{kind: NoticeRole, id: "u1", role: "USER", usable: true}},
		{"session s1 yesterday", notice{kind: NoticeSession, id: "s1", usable: true}},
		{"session s1 -5", notice{kind: NoticeSession, id: "s1", usable: true}},
		{"role u1 ROOT 1", notice{kind: NoticeUnknown}},
		{"session", notice{kind: NoticeUnknown}},
		{"session a b c", notice{kind: NoticeUnknown}},
		{"note o1 n1", notice{kind: NoticeUnknown}},
		{"", notice{kind: NoticeUnknown}},
	} {
		got := parseNotice(tc.payload)
		if !got.sent.Equal(tc.want.sent) {
			t.Errorf("parseNotice(%q).sent = %v, want %v", tc.payload, got.sent, tc.want.sent)
		}
		got.sent, tc.want.sent = time.Time{}, time.Time{}
		if got != tc.want {
			t.Errorf("parseNotice(%q) = %+v, want %+v", tc.payload, got, tc.want)
		}
	}
}

// Every outcome and verification has its own label.
func TestEventLabels(t *testing.T) {
	seen := map[string]bool{}
	for o := range NumOutcomes {
		seen[o.String()] = true
	}
	for a := range NumActions {
		seen["action "+a.String()] = true
	}
	if len(seen) != int(NumOutcomes)+int(NumActions) || seen["unknown"] {
		t.Errorf("labels are not distinct: %v", seen)
	}
	for err, want := range map[error]Outcome{
		nil:                         OutcomeSuccess,
		ErrInvalidCredentials:       OutcomeInvalidCredentials,
		rateLimited(time.Second):    OutcomeRateLimited,
		ErrRefreshTokenInvalid:      OutcomeRefreshInvalid,
		errReuseDetected:            OutcomeReuseDetected,
		ErrSignupClosed:             OutcomeSignupClosed,
		ErrUsernameTaken:            OutcomeUsernameTaken,
		ErrWrongCurrentPassword:     OutcomeInvalidInput,
		ErrTokenMissing:             OutcomeUnauthenticated,
		errors.New("database down"): OutcomeError,
	} {
		if got := attemptOutcome(err); got != want {
			t.Errorf("attemptOutcome(%v) = %s, want %s", err, got, want)
		}
	}
	for err, want := range map[error]Verification{
		nil: VerifyValid, ErrTokenMissing: VerifyMissing, ErrTokenInvalid: VerifyInvalid,
		ErrTokenExpired: VerifyExpired, ErrTokenRevoked: VerifyRevoked,
	} {
		if got := verificationOf(err); got != want {
			t.Errorf("verificationOf(%v) = %s, want %s", err, got, want)
		}
	}
}

// The pool reports the hashes queued for a slot and those running.
func TestHasher_ReportsQueueAndInFlight(t *testing.T) {
	h, err := NewHasher(PasswordParams, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := int64(h.Concurrency())
	if !h.slots.TryAcquire(n) {
		t.Fatal("pool busy")
	}
	done := make(chan error)
	go func() {
		_, err := h.Hash(context.Background(), "correct horse")
		done <- err
	}()
	for deadline := time.Now().Add(5 * time.Second); h.Waiting() != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Waiting() = %d with a full pool and one caller", h.Waiting())
		}
	}
	if h.Running() != 0 {
		t.Errorf("Running() = %d while the caller waits", h.Running())
	}
	h.slots.Release(n)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if h.Waiting() != 0 || h.Running() != 0 || h.Runs() != 1 {
		t.Errorf("after the hash: waiting %d, running %d, runs %d; want 0, 0, 1", h.Waiting(), h.Running(), h.Runs())
	}
}
