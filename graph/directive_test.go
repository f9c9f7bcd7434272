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
			_, err := authDirective(tc.ctx, nil, next, tc.requires, tc.fresh)
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
