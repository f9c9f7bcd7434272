// Command scale measures what Tollgate costs as its data grows. For each
// database and size it loads that many sessions (with SQL, a tenth of them
// revoked within the access-token lifetime, spread over a tenth as many
// users, plus one user with many devices), starts the real server on it, and
// prints one name=value line per figure. bench/scale.sh runs it; see
// bench/README.md.
package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"

	"tollgate/api"
	"tollgate/auth"
	"tollgate/config"
	"tollgate/db"
)

const secret = "scale-secret-scale-secret-scale-secret!"

func main() {
	var (
		dbs     = flag.String("db", "postgres,sqlite", "databases to measure")
		sizes   = flag.String("sizes", "10000,100000,1000000", "numbers of sessions")
		pgURL   = flag.String("pg", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL server (a database is created per size)")
		idle    = flag.Duration("idle", 30*time.Second, "how long to measure an idle instance (extrapolated to a minute)")
		explain = flag.String("explain", "", "PostgreSQL only: write the plan of every statement sent at the largest size to this file")
		pgLog   = flag.String("pglog", "/var/log/postgresql/postgresql-15-main.log", "PostgreSQL's log, where auto_explain writes the plans")
	)
	flag.Parse()
	ctx := context.Background()
	var ns []int
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1000 {
			fail("bad size %q (at least 1000)", s)
		}
		ns = append(ns, n)
	}
	for _, kind := range strings.Split(*dbs, ",") {
		for i, n := range ns {
			withExplain := *explain != "" && kind == db.Postgres && i == len(ns)-1
			r := run{kind: kind, n: n, pgURL: *pgURL, idle: *idle}
			if withExplain {
				r.explain, r.pgLog = *explain, *pgLog
			}
			r.measure(ctx)
		}
	}
}

type run struct {
	kind, pgURL    string
	n              int
	idle           time.Duration
	explain, pgLog string
}

func (r run) print(name string, value any) {
	fmt.Printf("db=%s sessions=%d %s=%v\n", r.kind, r.n, name, value)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "scale: "+format+"\n", args...)
	os.Exit(1)
}

// database creates a fresh database and returns its URL and a cleanup.
func (r run) database() (string, func()) {
	if r.kind == db.SQLite {
		dir, err := os.MkdirTemp("", "tollgate-scale")
		if err != nil {
			fail("%v", err)
		}
		return "sqlite:" + filepath.Join(dir, "app.db"), func() { os.RemoveAll(dir) }
	}
	admin, err := sqlx.Open("postgres", r.pgURL)
	if err != nil {
		fail("%v", err)
	}
	name := fmt.Sprintf("tollgate_scale_%d", r.n)
	admin.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`)
	if _, err := admin.Exec(`CREATE DATABASE ` + name); err != nil {
		fail("create database: %v", err)
	}
	u, _ := url.Parse(r.pgURL)
	u.Path = "/" + name
	return u.String(), func() {
		admin.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`)
		admin.Close()
	}
}

// clock is the servers' clock: the real time plus an offset that the
// refresh measurement moves forward, as fifteen minutes between refreshes.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration) { c.offset.Add(int64(d)) }

func (r run) measure(ctx context.Context) {
	dbURL, cleanup := r.database()
	defer cleanup()
	env := map[string]string{"DATABASE_URL": dbURL, "JWT_SECRET": secret, "SESSIONS_PER_USER": "1000000",
		"LOG_LEVEL": "error", "REGISTER_PER_IP_PER_HOUR": "1000000", "LOGIN_ATTEMPTS_PER_IP_PER_MINUTE": "1000000"}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		fail("%v", err)
	}
	dbx, err := db.Open(ctx, dbURL, 0)
	if err != nil {
		fail("%v", err)
	}
	defer dbx.Close()
	if err := db.Migrate(ctx, dbx); err != nil {
		fail("%v", err)
	}
	clk := &clock{}
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))

	// The user with many devices signs up through the API; its other sessions,
	// and everyone else's, are loaded with SQL.
	boot, err := api.NewServer(ctx, cfg, dbx, logger, clk.now)
	if err != nil {
		fail("%v", err)
	}
	bootHTTP := httptest.NewServer(boot)
	heavy := register(bootHTTP.URL, "heavy")
	bootHTTP.Close()
	boot.Close()
	devices := min(r.n/10, 100_000)
	load := time.Now()
	r.load(ctx, dbx, heavy.userID, devices, clk.now())
	r.print("load_s", fmt.Sprintf("%.1f", time.Since(load).Seconds()))

	// Start-up: the server loads every revocation of the access lifetime.
	start := time.Now()
	app, err := api.NewServer(ctx, cfg, dbx, logger, clk.now)
	if err != nil {
		fail("%v", err)
	}
	defer app.Close()
	r.print("startup_ms", time.Since(start).Milliseconds())
	r.print("revocations_held", app.Auth.Revocations().Len())
	srv := httptest.NewServer(app)
	defer srv.Close()

	// A resync when nothing changed (the first one after start catches up).
	app.Auth.SyncRevocations(ctx)
	cpu, alloc := cost(func() {
		if err := app.Auth.SyncRevocations(ctx); err != nil {
			fail("resync: %v", err)
		}
	})
	r.print("resync_cpu_ms", fmt.Sprintf("%.2f", cpu.Seconds()*1000))
	r.print("resync_alloc_mb", fmt.Sprintf("%.3f", float64(alloc)/(1<<20)))

	// An idle instance: its resyncs every 15 s and the rest of its tickers.
	idleCPU, _ := cost(func() { time.Sleep(r.idle) })
	r.print("idle_cpu_ms_per_min", fmt.Sprintf("%.1f", idleCPU.Seconds()*1000*float64(time.Minute)/float64(r.idle)))

	// Another instance on the same database hears of the logout (PostgreSQL).
	var other *api.Server
	if r.kind == db.Postgres {
		if other, err = api.NewServer(ctx, cfg, dbx, logger, clk.now); err != nil {
			fail("%v", err)
		}
		defer other.Close()
		time.Sleep(200 * time.Millisecond) // its listener connects
	}
	token := login(srv.URL, "heavy").access
	before := 0
	if other != nil {
		before = other.Auth.Revocations().Len()
	}
	t0 := time.Now()
	if out := post(srv.URL, token, `mutation { logout(allSessions: true) }`, nil); !strings.Contains(out, `"logout":true`) {
		fail("logout: %s", out)
	}
	r.print("logout_all_ms", time.Since(t0).Milliseconds())
	r.print("logout_all_sessions", devices+1)
	if other != nil {
		// The other instance refuses the user's tokens: one notice, no query.
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := other.Auth.Verify("Bearer " + token); err != nil {
				break
			}
			time.Sleep(time.Millisecond)
		}
		r.print("notify_lag_ms", time.Since(t0).Milliseconds())
		r.print("other_instance_entries_added", other.Auth.Revocations().Len()-before)
	} else {
		r.print("notify_lag_ms", "n/a (one instance)")
	}

	// 10,000 refused logins from one address.
	refusedCtx := auth.NewClientContext(ctx, auth.Client{IP: "203.0.113.9", RequestID: "scale"})
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < 10_000; i += 16 {
				app.Auth.Login(refusedCtx, fmt.Sprintf("nobody%d", i), "wrong password")
			}
		})
	}
	wg.Wait()
	var rows int
	dbx.Get(&rows, `SELECT count(*) FROM rate_limits`)
	r.print("rate_limit_rows_after_10k_refused", rows)

	// 1,000 refreshes of one session, fifteen minutes apart.
	p := login(srv.URL, "heavy")
	tok := p.refresh
	for range 1000 {
		clk.advance(15 * time.Minute)
		tok = refresh(srv.URL, tok)
	}
	dbx.Get(&rows, dbx.Rebind(`SELECT count(*) FROM refresh_tokens WHERE session_id = ?`), p.sid)
	r.print("refresh_rows_after_1k_refreshes", rows)

	if r.explain != "" {
		// Back to the present: the refreshes above moved the clock ten days
		// on, past every loaded session's expiry, so that cleanup would
		// delete the whole table (a sequential scan, rightly).
		clk.offset.Store(0)
		r.explainAll(ctx, cfg, dbURL, clk)
	}
}

// load inserts the sessions: devices of heavyID, and the others over n/10
// users, a tenth of them revoked 2 to 12 minutes ago (past the resync's
// margin, within the access-token lifetime), each with a refresh token; and
// a note per user.
func (r run) load(ctx context.Context, dbx *sqlx.DB, heavyID string, devices int, now time.Time) {
	users := r.n / 10
	uuid := `gen_random_uuid()::text`
	if r.kind == db.SQLite {
		uuid = `lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-a' || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))`
	}
	series := func(n int) string {
		if r.kind == db.SQLite {
			return fmt.Sprintf(`WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < %d)`, n-1)
		}
		return fmt.Sprintf(`WITH s(i) AS (SELECT generate_series(0, %d))`, n-1)
	}
	exec := func(q string, args ...any) {
		if _, err := dbx.ExecContext(ctx, dbx.Rebind(q), args...); err != nil {
			fail("load: %v\n%s", err, q)
		}
	}
	exec(series(users)+` INSERT INTO users (id, username, password_hash, role, created_at)
		SELECT `+uuid+`, 'user' || i, 'x', 'USER', ? FROM s`, now.Add(-time.Hour))
	exec(`CREATE TABLE load_users AS SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM users WHERE username LIKE 'user%'`)
	others := r.n - devices
	revoked := r.n / 10
	// Live sessions of the others.
	exec(series(others-revoked)+` INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, aal, amr)
		SELECT `+uuid+`, u.id, ?, ?, ?, 'aal1', 'pwd' FROM s JOIN load_users u ON u.n = s.i % ?`,
		now.Add(-time.Hour), now.Add(-time.Hour), now.Add(24*time.Hour), users)
	// Revoked 2 to 12 minutes ago.
	for k := range 10 {
		exec(series(revoked/10)+` INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, revoked_at, aal, amr)
			SELECT `+uuid+`, u.id, ?, ?, ?, ?, 'aal1', 'pwd' FROM s JOIN load_users u ON u.n = s.i % ?`,
			now.Add(-time.Hour), now.Add(-time.Hour), now.Add(24*time.Hour), now.Add(-time.Duration(2+k)*time.Minute), users)
	}
	// The heavy user's devices.
	exec(series(devices)+` INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, aal, amr)
		SELECT `+uuid+`, ?, ?, ?, ?, 'aal1', 'pwd' FROM s`, heavyID, now.Add(-time.Hour), now.Add(-time.Hour), now.Add(24*time.Hour))
	// A note per user.
	exec(`INSERT INTO notes (id, owner_id, title, body, created_at) SELECT `+uuid+`, id, 'note', 'body', ? FROM load_users`, now.Add(-time.Hour))
	exec(`DROP TABLE load_users`)
	// One live refresh token per session.
	hash := `encode(sha256(id::bytea), 'hex')`
	if r.kind == db.SQLite {
		hash = `lower(hex(randomblob(32)))`
	}
	exec(`INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at)
		SELECT ` + hash + `, id, created_at, expires_at FROM sessions`)
	exec(`ANALYZE`)
}

// cost returns the CPU time (user and system, the whole process) and the
// bytes allocated while f ran.
func cost(f func()) (time.Duration, uint64) {
	var m0, m1 runtime.MemStats
	var r0, r1 syscall.Rusage
	runtime.ReadMemStats(&m0)
	syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
	f()
	syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
	runtime.ReadMemStats(&m1)
	cpu := time.Duration(r1.Utime.Nano()-r0.Utime.Nano()) + time.Duration(r1.Stime.Nano()-r0.Stime.Nano())
	return cpu, m1.TotalAlloc - m0.TotalAlloc
}

type tokens struct{ access, refresh, sid, userID string }

func post(base, token, query string, vars map[string]any) string {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, base+"/graphql", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		fail("%v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

func payload(out, field string) tokens {
	var r struct {
		Data map[string]struct {
			AccessToken  string `json:"accessToken"`
			RefreshToken string `json:"refreshToken"`
			User         struct {
				ID string `json:"id"`
			} `json:"user"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Data[field].AccessToken == "" {
		fail("%s: %s", field, out)
	}
	p := r.Data[field]
	return tokens{access: p.AccessToken, refresh: p.RefreshToken, userID: p.User.ID, sid: claim(p.AccessToken, "sid")}
}

func claim(jwt, name string) string {
	parts := strings.Split(jwt, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c map[string]any
	json.Unmarshal(raw, &c)
	s, _ := c[name].(string)
	return s
}

const fields = `accessToken refreshToken user { id }`

func register(base, name string) tokens {
	return payload(post(base, "", `mutation($u: String!) { register(username: $u, password: "correct horse") { `+fields+` } }`,
		map[string]any{"u": name}), "register")
}

func login(base, name string) tokens { return loginWith(base, name, "correct horse") }

func loginWith(base, name, password string) tokens {
	return payload(post(base, "", `mutation($u: String!, $p: String!) { login(username: $u, password: $p) { `+fields+` } }`,
		map[string]any{"u": name, "p": password}), "login")
}

func refresh(base, token string) string {
	return payload(post(base, "", `mutation($t: String) { refreshToken(token: $t) { `+fields+` } }`,
		map[string]any{"t": token}), "refreshToken").refresh
}

// explainAll runs every operation once against a server whose connections
// log the plan of each statement (auto_explain), and writes the plans.
func (r run) explainAll(ctx context.Context, cfg config.Config, dbURL string, clk *clock) {
	logStart := fileSize(r.pgLog)
	u, _ := url.Parse(dbURL)
	q := u.Query()
	q.Set("options", "-c session_preload_libraries=auto_explain -c auto_explain.log_min_duration=0")
	u.RawQuery = q.Encode()
	cfg.DatabaseURL = u.String()
	dbx, err := db.Open(ctx, cfg.DatabaseURL, cfg.DatabaseMaxConns)
	if err != nil {
		fail("explain: %v", err)
	}
	defer dbx.Close()
	app, err := api.NewServer(ctx, cfg, dbx, slog.New(slog.NewJSONHandler(io.Discard, nil)), clk.now)
	if err != nil {
		fail("explain: %v", err)
	}
	defer app.Close()
	srv := httptest.NewServer(app)
	defer srv.Close()
	exercise(ctx, srv.URL, app)
	time.Sleep(500 * time.Millisecond) // the log is written asynchronously
	plans := readPlans(r.pgLog, logStart)
	f, err := os.Create(r.explain)
	if err != nil {
		fail("explain: %v", err)
	}
	defer f.Close()
	texts := make([]string, 0, len(plans))
	for t := range plans {
		texts = append(texts, t)
	}
	sort.Strings(texts)
	seq := 0
	for _, t := range texts {
		fmt.Fprintf(f, "```\n%s\n%s```\n\n", t, plans[t])
		if strings.Contains(plans[t], "Seq Scan on sessions") || strings.Contains(plans[t], "Seq Scan on users") ||
			strings.Contains(plans[t], "Seq Scan on refresh_tokens") || strings.Contains(plans[t], "Seq Scan on notes") {
			seq++
			fmt.Fprintf(os.Stderr, "scale: sequential scan of a large table:\n%s\n%s\n", t, plans[t])
		}
	}
	r.print("explained_statements", len(texts))
	r.print("statements_scanning_a_large_table", seq)
}

// exercise sends every operation of the schema once, and runs the
// background work, so that every statement the store has is sent.
func exercise(ctx context.Context, base string, app *api.Server) {
	admin := register(base, "explainadmin")
	app.Auth.EnsureAdmin(ctx, "rootadmin", "root password!")
	root := loginWith(base, "rootadmin", "root password!")
	p := register(base, "explainer")
	l := login(base, "explainer")
	post(base, "", `mutation { login(username: "explainer", password: "wrong password") { accessToken } }`, nil)
	refresh(base, l.refresh)
	for _, q := range []string{`{ protected }`, `{ me { id username role mfaEnabled } }`, `{ sessions { id current userAgent } }`,
		`mutation { createNote(title: "t", body: "b") { id } }`, `{ notes(first: 5) { id owner { username } } }`} {
		post(base, p.access, q, nil)
	}
	var created struct {
		Data struct {
			CreateNote struct{ ID string } `json:"createNote"`
		} `json:"data"`
	}
	json.Unmarshal([]byte(post(base, p.access, `mutation { createNote(title: "t2", body: "b") { id } }`, nil)), &created)
	post(base, p.access, `query($a: ID) { notes(first: 5, after: $a) { id } }`, map[string]any{"a": created.Data.CreateNote.ID})
	post(base, p.access, `query($id: ID!) { note(id: $id) { id } }`, map[string]any{"id": created.Data.CreateNote.ID})
	post(base, p.access, `mutation($id: ID!) { deleteNote(id: $id) }`, map[string]any{"id": created.Data.CreateNote.ID})
	post(base, p.access, `mutation($id: ID!) { revokeSession(id: $id) }`, map[string]any{"id": l.sid})
	page := post(base, root.access, `{ users(first: 2) { edges { cursor } pageInfo { endCursor } } }`, nil)
	var users struct {
		Data struct {
			Users struct {
				PageInfo struct{ EndCursor string } `json:"pageInfo"`
			} `json:"users"`
		} `json:"data"`
	}
	json.Unmarshal([]byte(page), &users)
	post(base, root.access, `query($a: String) { users(first: 2, after: $a) { edges { cursor } } }`, map[string]any{"a": users.Data.Users.PageInfo.EndCursor})
	post(base, root.access, `mutation($u: ID!) { setRole(userId: $u, role: ADMIN) { id } }`, map[string]any{"u": admin.userID})
	post(base, root.access, `mutation($u: ID!) { setRole(userId: $u, role: USER) { id } }`, map[string]any{"u": admin.userID})
	post(base, p.access, `mutation { enrollTotp(friendlyName: "phone") { factor { id } } }`, nil)
	post(base, p.access, `{ mfaFactors { id verified } }`, nil)
	post(base, p.access, `mutation { changePassword(currentPassword: "correct horse", newPassword: "battery staple") }`, nil)
	post(base, p.access, `mutation { logout(allSessions: true) }`, nil)
	post(base, admin.access, `mutation { logout }`, nil)
	app.Auth.SyncRevocations(ctx)
	app.Auth.DeleteRetired(ctx)
	app.Auth.DeleteExpired(ctx)
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		fail("explain needs PostgreSQL's log at %s: %v", path, err)
	}
	return st.Size()
}

// readPlans reads auto_explain's entries written after offset: query text
// to plan.
func readPlans(path string, offset int64) map[string]string {
	f, err := os.Open(path)
	if err != nil {
		fail("%v", err)
	}
	defer f.Close()
	f.Seek(offset, io.SeekStart)
	plans := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var text string
	var plan strings.Builder
	inPlan := false
	flush := func() {
		if text != "" && !strings.Contains(text, "pg_notify") && !strings.Contains(text, "goose") {
			if _, seen := plans[text]; !seen {
				plans[text] = plan.String()
			}
		}
		text, inPlan = "", false
		plan.Reset()
	}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, "LOG:  duration:") && strings.HasSuffix(line, "plan:"):
			flush()
			inPlan = true
		case inPlan && strings.HasPrefix(line, "\tQuery Text: "):
			text = strings.Join(strings.Fields(strings.TrimPrefix(line, "\tQuery Text: ")), " ")
		case inPlan && strings.HasPrefix(line, "\t") && text != "" && plan.Len() == 0 && !looksLikePlan(line):
			text += " " + strings.Join(strings.Fields(line), " ") // a query text over several lines
		case inPlan && strings.HasPrefix(line, "\t"):
			plan.WriteString(strings.TrimPrefix(line, "\t") + "\n")
		default:
			flush()
		}
	}
	flush()
	return plans
}

// looksLikePlan tells a plan's first line from the rest of a query text.
func looksLikePlan(line string) bool {
	return strings.Contains(line, "(cost=")
}
