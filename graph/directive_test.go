package graph

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"tollgate/auth"
)

// The schema of this stage has no ADMIN-only or fresh-only field yet, so the
// role and freshness rules of @auth are proven here on the directive itself,
// through the error presenter that shapes what clients see.
func TestAuthDirective(t *testing.T) {
	admin, user := auth.RoleAdmin, auth.RoleUser
	yes, no := true, false
	ok := func(ctx context.Context) (any, error) { return "ok", nil }
	withID := func(role auth.Role, fresh bool) context.Context {
		return auth.NewContext(context.Background(), auth.Identity{UserID: "u", Role: role, SessionID: "s", TokenID: "j", Fresh: fresh})
	}
	for _, tc := range []struct {
		name           string
		ctx            context.Context
		requires       *auth.Role
		fresh          *bool
		code, reason   string
		wantNextCalled bool
	}{
		{"no identity", context.Background(), &user, &no, "UNAUTHENTICATED", "TOKEN_MISSING", false},
		{"expired token", auth.NewContextWithoutIdentity(context.Background(), auth.ErrTokenExpired), &user, &no, "UNAUTHENTICATED", "TOKEN_EXPIRED", false},
		{"user on a user field", withID(user, false), &user, &no, "", "", true},
		{"admin on a user field", withID(admin, false), &user, &no, "", "", true},
		{"user on an admin field", withID(user, true), &admin, &no, "FORBIDDEN", "ROLE_REQUIRED", false},
		{"admin on an admin field", withID(admin, false), &admin, &no, "", "", true},
		{"refreshed token on a fresh field", withID(admin, false), &user, &yes, "FORBIDDEN", "FRESH_TOKEN_REQUIRED", false},
		{"fresh token on a fresh field", withID(user, true), &user, &yes, "", "", true},
		{"role checked before freshness", withID(user, false), &admin, &yes, "FORBIDDEN", "ROLE_REQUIRED", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			called := false
			next := func(ctx context.Context) (any, error) { called = true; return ok(ctx) }
			_, err := authDirective(tc.ctx, nil, next, tc.requires, tc.fresh, nil)
			if called != tc.wantNextCalled {
				t.Fatalf("resolver called = %v, want %v", called, tc.wantNextCalled)
			}
			if tc.code == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			got := errorPresenter(slog.New(slog.DiscardHandler))(tc.ctx, err)
			if got.Extensions["code"] != tc.code || got.Extensions["reason"] != tc.reason {
				t.Errorf("extensions = %v, want %s/%s", got.Extensions, tc.code, tc.reason)
			}
		})
	}
}

// The assurance level: aal omitted follows the token's mfa claim, AAL1 lets a
// half-signed-in session through, AAL2 always demands a second factor (a
// user without one included), and only the token is read.
func TestAuthDirective_AAL(t *testing.T) {
	user := auth.RoleUser
	yes, no := true, false
	aal1, aal2 := auth.AAL1, auth.AAL2
	withLevel := func(level auth.AAL, mfa, fresh bool) context.Context {
		return auth.NewContext(context.Background(), auth.Identity{UserID: "u", Role: user, SessionID: "s", TokenID: "j",
			Fresh: fresh, AAL: level, MFA: mfa})
	}
	for _, tc := range []struct {
		name   string
		ctx    context.Context
		fresh  *bool
		aal    *auth.AAL
		reason string // "" means allowed
	}{
		{name: "no factor, default", ctx: withLevel(aal1, false, false)},
		{name: "no factor, AAL1 field", ctx: withLevel(aal1, false, false), aal: &aal1},
		{name: "no factor, AAL2 field", ctx: withLevel(aal1, false, false), aal: &aal2, reason: "MFA_REQUIRED"},
		{name: "no factor, AAL2 field, AAL2 session", ctx: withLevel(aal2, false, false), aal: &aal2},
		{name: "enrolled at AAL1, default", ctx: withLevel(aal1, true, true), reason: "MFA_REQUIRED"},
		{name: "enrolled at AAL1, AAL1 field", ctx: withLevel(aal1, true, false), aal: &aal1},
		{name: "enrolled at AAL1, AAL2 field", ctx: withLevel(aal1, true, true), aal: &aal2, reason: "MFA_REQUIRED"},
		{name: "enrolled at AAL2, default", ctx: withLevel(aal2, true, false)},
		{name: "enrolled at AAL2, AAL2 field", ctx: withLevel(aal2, true, false), aal: &aal2},
		{name: "a token without the claim is AAL1", ctx: withLevel("", true, false), reason: "MFA_REQUIRED"},
		{name: "level checked before freshness", ctx: withLevel(aal1, true, false), fresh: &yes, reason: "MFA_REQUIRED"},
		{name: "fresh still checked at AAL2", ctx: withLevel(aal2, true, false), fresh: &yes, reason: "FRESH_TOKEN_REQUIRED"},
		{name: "fresh AAL2", ctx: withLevel(aal2, true, true), fresh: &yes},
		{name: "not fresh, not asked", ctx: withLevel(aal2, true, false), fresh: &no},
	} {
		t.Run(tc.name, func(t *testing.T) {
			called := false
			next := func(ctx context.Context) (any, error) { called = true; return "ok", nil }
			_, err := authDirective(tc.ctx, nil, next, &user, tc.fresh, tc.aal)
			if called != (tc.reason == "") {
				t.Fatalf("resolver called = %v, want %v (err %v)", called, tc.reason == "", err)
			}
			if tc.reason == "" {
				return
			}
			got := errorPresenter(slog.New(slog.DiscardHandler))(tc.ctx, err)
			if got.Extensions["code"] != "FORBIDDEN" || got.Extensions["reason"] != tc.reason {
				t.Errorf("extensions = %v, want FORBIDDEN/%s", got.Extensions, tc.reason)
			}
		})
	}
}

func TestErrorPresenter_HidesUnexpectedErrors(t *testing.T) {
	var logs bytes.Buffer
	present := errorPresenter(slog.New(slog.NewJSONHandler(&logs, nil)))
	ctx := auth.NewClientContext(context.Background(), auth.Client{RequestID: "req-1"})
	cause := fmt.Errorf("user by id: %w", errors.New(`pq: relation "users" does not exist`))

	got := present(ctx, cause)
	if got.Message != "Internal server error." || got.Extensions["code"] != "INTERNAL_SERVER_ERROR" || got.Extensions["requestId"] != "req-1" {
		t.Errorf("presented %+v", got)
	}
	if !strings.Contains(logs.String(), `relation \"users\" does not exist`) || !strings.Contains(logs.String(), "req-1") {
		t.Errorf("the cause is not in the log: %s", logs.String())
	}

	// A domain error wrapping an internal cause shows only its public message.
	wrapped := fmt.Errorf("login: %w", &auth.Error{Code: "UNAUTHENTICATED", Reason: "TOKEN_INVALID", Message: "The access token is invalid.", Err: errors.New("signature is invalid")})
	got = present(ctx, wrapped)
	if got.Message != "The access token is invalid." || strings.Contains(fmt.Sprint(got.Extensions), "signature") {
		t.Errorf("presented %+v", got)
	}
}

func TestRecoverFunc_LogsThePanicOnce(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	ctx := auth.NewClientContext(context.Background(), auth.Client{RequestID: "req-2"})
	err := recoverFunc(logger)(ctx, "boom")
	got := errorPresenter(logger)(ctx, err)
	if got.Extensions["code"] != "INTERNAL_SERVER_ERROR" || strings.Contains(got.Message, "boom") {
		t.Errorf("presented %+v", got)
	}
	if n := strings.Count(logs.String(), "\n"); n != 1 || !strings.Contains(logs.String(), "boom") {
		t.Errorf("want the panic logged once, got:\n%s", logs.String())
	}
}
