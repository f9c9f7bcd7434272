package api_test

import (
	"encoding/json"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"tollgate/db/dbtest"
)

// BenchmarkRefresh measures refreshToken through the whole handler, on an
// in-memory request, on each database: 64 goroutines (SetParallelism), each
// refreshing a session of its own with the token the last answer carried,
// as the clients of bench/run.sh refresh do over HTTP. stmts/op counts the
// statements sent per refresh, the throttle's included.
//
//	go test -run x -bench Refresh -benchtime 2000x ./api/
func BenchmarkRefresh(b *testing.B) {
	for _, kind := range dbtest.Kinds {
		b.Run(kind, func(b *testing.B) {
			s := newTestServer(b, dbtest.URL(b, kind), map[string]string{
				"REFRESH_PER_IP_PER_MINUTE": "1000000", "LOGIN_ATTEMPTS_PER_IP_PER_MINUTE": "1000000", "DATABASE_MAX_CONNS": os.Getenv("BENCH_MAX_CONNS"),
			})
			registerInMemory(b, s.App, "alice")
			const sessions = 64
			tokens := make(chan string, sessions)
			for range sessions {
				tokens <- loginInMemory(b, s.App, "alice")
			}
			before := s.App.Store.Queries()
			var failed atomic.Int64
			b.SetParallelism(max(1, sessions/runtime.GOMAXPROCS(0)))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				token := <-tokens
				for pb.Next() {
					next, ok := refreshInMemory(s.App, token)
					if !ok {
						failed.Add(1)
						return
					}
					token = next
				}
			})
			b.StopTimer()
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d refreshes failed", n)
			}
			b.ReportMetric(float64(s.App.Store.Queries()-before)/float64(b.N), "stmts/op")
		})
	}
}

// loginInMemory logs username in through the handler and returns the refresh token.
func loginInMemory(tb testing.TB, h http.Handler, username string) string {
	tb.Helper()
	body, _ := json.Marshal(map[string]any{
		"query":     `mutation($u: String!, $p: String!) { login(username: $u, password: $p) { refreshToken } }`,
		"variables": map[string]any{"u": username, "p": "correct horse"},
	})
	rec := serveInMemory(h, "", string(body))
	var res struct {
		Data struct {
			Login struct {
				RefreshToken string `json:"refreshToken"`
			} `json:"login"`
		} `json:"data"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil || res.Data.Login.RefreshToken == "" {
		tb.Fatalf("login: %d %s (%v)", rec.Code, rec.Body, err)
	}
	return res.Data.Login.RefreshToken
}

// refreshInMemory trades token for a new pair and returns the new refresh token.
func refreshInMemory(h http.Handler, token string) (string, bool) {
	rec := serveInMemory(h, "", `{"query":"mutation($t: String) { refreshToken(token: $t) { accessToken refreshToken } }","variables":{"t":"`+token+`"}}`)
	var res struct {
		Data struct {
			RefreshToken struct {
				AccessToken  string `json:"accessToken"`
				RefreshToken string `json:"refreshToken"`
			} `json:"refreshToken"`
		} `json:"data"`
	}
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &res) != nil ||
		res.Data.RefreshToken.AccessToken == "" || strings.TrimSpace(res.Data.RefreshToken.RefreshToken) == "" {
		return "", false
	}
	return res.Data.RefreshToken.RefreshToken, true
}
