package api_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate/db/dbtest"
)

// Every request of httptest comes from 127.0.0.1. Behind TRUSTED_PROXIES that
// address is a proxy, and X-Forwarded-For names the client: that is how these
// tests speak from many addresses.
const proxy = "127.0.0.1/32"

// behindProxy returns env with TRUSTED_PROXIES set to the test's own address.
func behindProxy(env map[string]string) map[string]string {
	out := map[string]string{"TRUSTED_PROXIES": proxy}
	maps.Copy(out, env)
	return out
}

// postFrom sends one GraphQL operation with X-Forwarded-For: xff (none when
// xff is "") and an optional bearer token.
func (s *testServer) postFrom(t *testing.T, xff, token, query string, vars map[string]any) gqlResponse {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		t.Fatal(err)
	}
	header := http.Header{"Content-Type": {"application/json"}}
	if xff != "" {
		header.Set("X-Forwarded-For", xff)
	}
	if token != "" {
		header.Set("Authorization", "Bearer "+token)
	}
	return s.send(t, http.MethodPost, "/graphql", header, string(body))
}

// loginFrom logs in from the client address(es) of xff.
func (s *testServer) loginFrom(t *testing.T, xff, username, password string) gqlResponse {
	t.Helper()
	return s.postFrom(t, xff, "", `mutation($u: String!, $p: String!) { login(username: $u, password: $p) { `+payloadFields+` } }`,
		map[string]any{"u": username, "p": password})
}

// registerFrom signs up from the client address(es) of xff.
func (s *testServer) registerFrom(t *testing.T, xff, username, password string) gqlResponse {
	t.Helper()
	return s.postFrom(t, xff, "", `mutation($u: String!, $p: String!) { register(username: $u, password: $p) { `+payloadFields+` } }`,
		map[string]any{"u": username, "p": password})
}

// refreshFrom calls refreshToken from the client address(es) of xff.
func (s *testServer) refreshFrom(t *testing.T, xff, token string) gqlResponse {
	t.Helper()
	return s.postFrom(t, xff, "", `mutation($t: String) { refreshToken(token: $t) { `+payloadFields+` } }`, map[string]any{"t": token})
}

// changePassword calls changePassword with token.
func (s *testServer) changePassword(t *testing.T, token, current, next string) gqlResponse {
	t.Helper()
	return s.post(t, token, `mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }`,
		map[string]any{"c": current, "n": next})
}

// wantOK asserts that res carries data.name and no error.
func (r gqlResponse) wantOK(t *testing.T, name string) {
	t.Helper()
	var v any
	r.field(t, name, &v)
	if v == nil {
		t.Fatalf("data.%s is null: %s", name, r.Raw)
	}
}

// wantRateLimited asserts one RATE_LIMITED error in an executed (HTTP 200)
// response whose extensions.retryAfter is whole seconds in [1, most], and
// returns it.
func (r gqlResponse) wantRateLimited(t *testing.T, most int) int {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Errorf("status = %d, want 200 (the operation executed)", r.Status)
	}
	e := r.wantError(t, "RATE_LIMITED", "")
	f, ok := e.Extensions["retryAfter"].(float64)
	if !ok || f != math.Trunc(f) || f < 1 || f > float64(most) {
		t.Fatalf("retryAfter = %v, want whole seconds in [1, %d]: %s", e.Extensions["retryAfter"], most, r.Raw)
	}
	return int(f)
}

// limitHits reads, behind the server's back, the attempts counted per
// rate-limit bucket (all windows together).
func limitHits(t *testing.T, s *testServer) map[string]int {
	t.Helper()
	var rows []struct {
		Bucket string `db:"bucket"`
		Hits   int    `db:"hits"`
	}
	if err := s.DB.Select(&rows, `SELECT bucket, SUM(hits) AS hits FROM rate_limits GROUP BY bucket`); err != nil {
		t.Fatal(err)
	}
	out := make(map[string]int, len(rows))
	for _, r := range rows {
		out[r.Bucket] = r.Hits
	}
	return out
}

// loginIPBuckets lists the login-ip:<addr> buckets, sorted: the addresses
// that failed logins were attributed to.
func loginIPBuckets(t *testing.T, s *testServer) []string {
	t.Helper()
	var keys []string
	for k := range limitHits(t, s) {
		if strings.HasPrefix(k, "login-ip:") {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// A guesser gets 5 wrong passwords per (username, address) per 15 minutes;
// past that even the right password is refused, before any work is spent on
// it, until the window ends.
func TestLogin_ThrottledPerUsernameAndAddress(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		s.register(t, "alice", "correct horse")

		// Case and spaces do not make another account, so not another bucket.
		for _, name := range []string{"alice", "ALICE", " Alice ", "aLiCe", "alice"} {
			s.login(t, "", name, "wrong horse").wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
		}
		// Half a second too, so that retryAfter has to round up.
		s.Clock.Advance(time.Minute + 500*time.Millisecond)

		// Refused on the counters alone: no password hash is computed, and
		// the refused attempt is not itself counted.
		before, hashes := limitHits(t, s), s.App.Hasher.Runs()
		// The failures were all at 12:00, so they are forgotten at 12:15 at
		// the latest: less than 14 minutes from now.
		retry := s.login(t, "", "alice", "correct horse").wantRateLimited(t, 14*60)
		if n := s.App.Hasher.Runs() - hashes; n != 0 {
			t.Errorf("the throttled login computed %d password hashes, want 0", n)
		}
		// (The minute's count of every attempt has a window of its own, over
		// by now: its row is gone, as a bucket's row goes when its window ends.)
		after := limitHits(t, s)
		maps.DeleteFunc(before, func(k string, _ int) bool { return strings.HasPrefix(k, "login-attempts-ip:") })
		if !maps.Equal(after, before) {
			t.Errorf("the throttled login changed the counters: %v, then %v", before, after)
		}

		// retryAfter is honest: one second early is still too early.
		s.Clock.Advance(time.Duration(retry-1) * time.Second)
		s.login(t, "", "alice", "correct horse").wantRateLimited(t, 1)
		s.Clock.Advance(time.Second)
		s.mustLogin(t, "alice", "correct horse")
	})
}

// Throttling a guesser must not let them lock the victim out: the victim's
// own address has its own counter.
func TestLogin_ThrottlingNeverLocksTheVictimOut(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, behindProxy(nil))
		s.register(t, "alice", "correct horse")
		const attacker, victim = "203.0.113.7", "198.51.100.2"
		for range 5 {
			s.loginFrom(t, attacker, "alice", "wrong horse").wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
		}
		s.loginFrom(t, attacker, "alice", "wrong horse").wantRateLimited(t, 900)

		s.loginFrom(t, victim, "alice", "correct horse").wantOK(t, "login")
		// The victim's success clears the victim's counter only.
		s.loginFrom(t, attacker, "alice", "correct horse").wantRateLimited(t, 900)
	})
}

// One address guessing across many usernames is stopped by the per-address
// limit, whatever the username; other addresses are not. Signing in to an
// account of one's own on the way does not clear the address's count.
func TestLogin_ThrottledPerAddressAcrossUsernames(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, behindProxy(map[string]string{"LOGIN_FAILURES_PER_IP": "10", "LOGIN_FAILURES_PER_USER_IP": "5"}))
		s.register(t, "alice", "correct horse")
		s.register(t, "mallory", "mallory's own")
		const attacker, other = "203.0.113.7", "198.51.100.2"
		for i := range 10 {
			if i == 5 {
				s.loginFrom(t, attacker, "mallory", "mallory's own").wantOK(t, "login")
			}
			name := "user" + strings.Repeat("x", i) // 10 usernames, none with more than one failure
			s.loginFrom(t, attacker, name, "wrong horse").wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
		}
		s.loginFrom(t, attacker, "trudy", "wrong horse").wantRateLimited(t, 900)
		s.loginFrom(t, attacker, "alice", "correct horse").wantRateLimited(t, 900)

		s.loginFrom(t, other, "trudy", "wrong horse").wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
		s.loginFrom(t, other, "alice", "correct horse").wantOK(t, "login")
	})
}

// A successful login clears the (username, address) counter: the owner who
// mistyped four times and then got in starts again from zero.
func TestLogin_SuccessResetsTheUsernameAddressCounter(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		s.register(t, "alice", "correct horse")
		for range 4 {
			s.login(t, "", "alice", "wrong horse").wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
		}
		s.mustLogin(t, "alice", "correct horse")
		for range 5 {
			s.login(t, "", "alice", "wrong horse").wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
		}
		// Counting started again, and still stops at 5.
		s.login(t, "", "alice", "correct horse").wantRateLimited(t, 900)
	})
}

// The counters live in the shared database: a guesser spreading attempts
// over two instances gets no more than from one.
func TestLogin_ThrottlingHoldsAcrossInstances(t *testing.T) {
	url := dbtest.URL(t, "postgres")
	a := newTestServer(t, url, behindProxy(nil))
	b := newTestServer(t, url, behindProxy(nil))
	a.register(t, "alice", "correct horse")
	const attacker = "203.0.113.7"
	for range 3 {
		a.loginFrom(t, attacker, "alice", "wrong horse").wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
	}
	for range 2 {
		b.loginFrom(t, attacker, "alice", "wrong horse").wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
	}
	a.loginFrom(t, attacker, "alice", "correct horse").wantRateLimited(t, 900)
	b.loginFrom(t, attacker, "alice", "correct horse").wantRateLimited(t, 900)
}

// register is limited per address per hour, refused attempts create nothing,
// and other addresses are unaffected.
func TestRegister_ThrottledPerAddress(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, behindProxy(map[string]string{"REGISTER_PER_IP_PER_HOUR": "3"}))
		const a, b = "203.0.113.7", "198.51.100.2"
		for _, name := range []string{"alice", "bob", "carol"} {
			s.registerFrom(t, a, name, "correct horse").wantOK(t, "register")
		}
		s.Clock.Advance(10 * time.Minute)
		hashes := s.App.Hasher.Runs()
		retry := s.registerFrom(t, a, "dave", "correct horse").wantRateLimited(t, 50*60)
		if n := s.App.Hasher.Runs() - hashes; n != 0 {
			t.Errorf("the throttled register computed %d password hashes, want 0", n)
		}
		s.registerFrom(t, b, "erin", "correct horse").wantOK(t, "register")

		s.Clock.Advance(time.Duration(retry) * time.Second)
		// "dave" is free: the refused attempt created nothing.
		s.registerFrom(t, a, "dave", "correct horse").wantOK(t, "register")
	})
}

// refreshToken is limited per address per minute, counting every attempt:
// invalid tokens too, so that guessing tokens is throttled.
func TestRefresh_ThrottledPerAddress(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, behindProxy(map[string]string{"REFRESH_PER_IP_PER_MINUTE": "3"}))
		reg := s.register(t, "alice", "correct horse")
		const a, b = "203.0.113.7", "198.51.100.2"
		for range 3 {
			s.refreshFrom(t, a, strings.Repeat("A", 43)).wantError(t, "UNAUTHENTICATED", "REFRESH_TOKEN_INVALID")
		}
		s.Clock.Advance(10 * time.Second)
		retry := s.refreshFrom(t, a, *reg.RefreshToken).wantRateLimited(t, 50)

		// The refused attempt did not spend the token: it still works elsewhere.
		var next authPayload
		s.refreshFrom(t, b, *reg.RefreshToken).field(t, "refreshToken", &next)

		s.Clock.Advance(time.Duration(retry) * time.Second)
		s.refreshFrom(t, a, *next.RefreshToken).wantOK(t, "refreshToken")
	})
}

// A stolen fresh token must not become a password oracle: wrong current
// passwords count like failed logins, and past the limit even the right one
// is refused, whatever fresh token carries it.
func TestChangePassword_WrongCurrentPasswordsAreThrottled(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		s.register(t, "alice", "correct horse")
		p := s.mustLogin(t, "alice", "correct horse")
		for range 5 {
			s.changePassword(t, p.AccessToken, "wrong horse", "battery staple").wantError(t, "BAD_USER_INPUT", "INVALID_INPUT")
		}
		fresh := s.mustLogin(t, "alice", "correct horse")
		hashes := s.App.Hasher.Runs()
		retry := s.changePassword(t, fresh.AccessToken, "correct horse", "battery staple").wantRateLimited(t, 900)
		if n := s.App.Hasher.Runs() - hashes; n != 0 {
			t.Errorf("the throttled change computed %d password hashes, want 0", n)
		}
		// Nothing changed.
		s.login(t, "", "alice", "battery staple").wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")

		s.Clock.Advance(time.Duration(retry) * time.Second)
		fresh = s.mustLogin(t, "alice", "correct horse")
		if res := s.changePassword(t, fresh.AccessToken, "correct horse", "battery staple"); string(res.Data["changePassword"]) != "true" {
			t.Fatalf("changePassword after the window: %s", res.Raw)
		}
		s.mustLogin(t, "alice", "battery staple")
	})
}

// The throttled address is the connection's peer unless that peer is a
// trusted proxy; then it is the right-most X-Forwarded-For hop that is not a
// trusted proxy. Anything left of it is the client's to invent, so rotating
// it must not escape the limit. Each case makes 6 failed logins whose headers
// differ where they may be forged, expects the 6th throttled and every
// attempt attributed to one address; then a genuinely different client
// (when the server can tell one) is not throttled.
func TestTrustedProxies_DecideTheThrottledAddress(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		xff  func(i int) string
		addr string
		// otherXFF is another real client, attributed to otherAddr; "" when
		// the server cannot tell clients apart.
		otherXFF, otherAddr string
	}{
		{
			name: "without TRUSTED_PROXIES the header is ignored",
			xff:  func(i int) string { return fmt.Sprintf("10.1.0.%d", i+1) },
			addr: "127.0.0.1",
		},
		{
			name:     "a spoofed left-most hop is ignored",
			env:      behindProxy(nil),
			xff:      func(i int) string { return fmt.Sprintf("1.1.1.%d, 2.2.2.2", i+1) },
			addr:     "2.2.2.2",
			otherXFF: "2.2.2.2, 5.5.5.5", otherAddr: "5.5.5.5",
		},
		{
			name:     "a chain of trusted proxies is walked",
			env:      map[string]string{"TRUSTED_PROXIES": proxy + ",10.0.0.0/8"},
			xff:      func(i int) string { return fmt.Sprintf("9.9.9.%d, 3.3.3.3, 10.0.0.5", i+1) },
			addr:     "3.3.3.3",
			otherXFF: "4.4.4.4, 10.0.0.5", otherAddr: "4.4.4.4",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dbtest.ForEach(t, func(t *testing.T, url string) {
				s := newTestServer(t, url, tc.env)
				for i := range 5 {
					s.loginFrom(t, tc.xff(i), "alice", "wrong horse").wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
				}
				s.loginFrom(t, tc.xff(5), "alice", "wrong horse").wantRateLimited(t, 900)
				want := []string{"login-ip:" + tc.addr}
				if tc.otherXFF != "" {
					s.loginFrom(t, tc.otherXFF, "alice", "wrong horse").wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
					want = append(want, "login-ip:"+tc.otherAddr)
					slices.Sort(want)
				}
				if got := loginIPBuckets(t, s); !slices.Equal(got, want) {
					t.Errorf("attempts attributed to %v, want %v", got, want)
				}
			})
		})
	}
}

// Guesses sent all at once cannot slip through while earlier ones are still
// being hashed: each attempt is counted before its hash is computed.
func TestLogin_ConcurrentGuessesAreThrottledToo(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		s.register(t, "alice", "correct horse")
		before := s.App.Hasher.Runs()
		const n = 30
		results := make([]gqlResponse, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { results[i] = s.login(t, "", "alice", fmt.Sprintf("guess-%02d", i)) })
		}
		wg.Wait()
		refused, wrong := 0, 0
		for _, r := range results {
			switch code := r.Errors[0].Extensions["code"]; code {
			case "RATE_LIMITED":
				refused++
			case "UNAUTHENTICATED":
				wrong++
			default:
				t.Fatalf("unexpected %s", r.Raw)
			}
		}
		if wrong != 5 || refused != n-5 {
			t.Errorf("%d guesses checked and %d refused, want 5 and %d", wrong, refused, n-5)
		}
		if runs := s.App.Hasher.Runs() - before; runs != 5 {
			t.Errorf("%d hashes for %d concurrent guesses, want 5", runs, n)
		}
	})
}

// Concurrent correct logins of one user from one address were counted as
// failures while in flight: 9 of 600 were refused. One that finds the limit
// passed only by attempts still in flight now waits for them.
func TestLogin_ConcurrentCorrectLoginsAreNotTakenForFailures(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		s.register(t, "alice", "correct horse")
		// Over twice the limit of 5, and few enough that one hasher slot
		// (GOMAXPROCS-1 on two cores) gets through them within the request
		// deadline even under the race detector.
		const n = 12
		results := make([]gqlResponse, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { results[i] = s.login(t, "", "alice", "correct horse") })
		}
		wg.Wait()
		for _, r := range results {
			if len(r.Errors) != 0 {
				t.Fatalf("a correct login was refused: %s", r.Raw)
			}
		}
		// And a failure still counts once decided.
		s.login(t, "", "alice", "wrong horse").wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
		if got := limitHits(t, s); got["login-ip:127.0.0.1"] != 1 {
			t.Errorf("counters after one failure: %v", got)
		}
	})
}

// An IPv6 client is limited by its /64: the addresses inside it are free
// for it to choose.
func TestLogin_IPv6ClientsAreLimitedPer64(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), behindProxy(nil))
	s.register(t, "alice", "correct horse")
	for i := range 5 {
		s.loginFrom(t, fmt.Sprintf("2001:db8:1:2::%x", i+1), "alice", "wrong horse").wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
	}
	s.loginFrom(t, "2001:db8:1:2:ffff::9", "alice", "correct horse").wantRateLimited(t, 15*60)
	// Another /64 is another client.
	var p authPayload
	s.loginFrom(t, "2001:db8:1:3::1", "alice", "correct horse").field(t, "login", &p)
}
