// Command cost prints the database cost of each mutation in bench/README.md
// ("Cost model"): for one call, the statements Tollgate sends, the round
// trips they take to PostgreSQL, the rows written (inserted, updated or
// deleted) and the bytes of write-ahead log, which is what a durable commit
// waits for.
//
// It starts the real server in process on a fresh PostgreSQL database
// ($PGURL, default postgres://postgres@127.0.0.1:5432/postgres, used only to
// create and drop it), connected through a proxy of its own that counts the
// round trips: every Sync and every simple Query a client sends is one
// request that waits for the server's reply. Rows are counted by a trigger
// that this program adds to every table after migrating (it advances a
// sequence, which is not transactional and so counts at once); the log's
// bytes are pg_current_wal_insert_lsn() before and after, less what the
// counting itself wrote.
//
//	go run ./bench/cost
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"

	"tollgate/api"
	"tollgate/config"
	"tollgate/db"
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "cost: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	ctx := context.Background()
	admin := os.Getenv("PGURL")
	if admin == "" {
		admin = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	adm, err := sqlx.Open("postgres", admin)
	if err != nil {
		fail("%v", err)
	}
	defer adm.Close()
	name := fmt.Sprintf("tollgate_cost_%d", os.Getpid())
	if _, err := adm.Exec(`CREATE DATABASE ` + name); err != nil {
		fail("create database: %v", err)
	}
	defer adm.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`)
	direct, _ := url.Parse(admin)
	direct.Path = "/" + name

	// The server reaches PostgreSQL through the counting proxy.
	p := newProxy(direct.Host)
	viaProxy := *direct
	viaProxy.Host = p.addr
	env := map[string]string{"DATABASE_URL": viaProxy.String(), "JWT_SECRET": strings.Repeat("k", 43),
		"LOG_LEVEL": "error", "MAIL_TRANSPORT": "log",
		// One connection, so that the first pass prepares every statement
		// on the connection the second runs on.
		"DATABASE_MAX_CONNS": "1"}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		fail("%v", err)
	}
	dbx, err := db.Open(ctx, cfg.DatabaseURL, cfg.DatabaseMaxConns)
	if err != nil {
		fail("%v", err)
	}
	defer dbx.Close()
	if err := db.Migrate(ctx, dbx); err != nil {
		fail("%v", err)
	}
	stats, err := sqlx.Open("postgres", direct.String())
	if err != nil {
		fail("%v", err)
	}
	defer stats.Close()
	stats.SetMaxOpenConns(1)
	if _, err := stats.Exec(countRows); err != nil {
		fail("count rows: %v", err)
	}
	app, err := api.NewServer(ctx, cfg, dbx, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now)
	if err != nil {
		fail("%v", err)
	}
	defer app.Close()
	srv := httptest.NewServer(app)
	defer srv.Close()
	m := meter{app: app, proxy: p, stats: stats, url: srv.URL + "/graphql"}

	// A first pass prepares the server's statements, generates its keys and
	// opens the throttles' windows; the second is the one printed.
	m.pass("alice", false)
	m.pass("bob", true)
}

// pass sends each mutation once as a new user named user.
func (m meter) pass(user string, print bool) {
	m.print = print
	if print {
		fmt.Printf("| mutation | statements | round trips | rows written | WAL bytes |\n|---|---:|---:|---:|---:|\n")
	}
	var reg, login, next struct{ AccessToken, RefreshToken string }
	m.measure("register", "", `mutation { register(username: "`+user+`", password: "correct horse battery") { accessToken refreshToken } }`, &reg)
	m.measure("login", "", `mutation { login(username: "`+user+`", password: "correct horse battery") { accessToken refreshToken } }`, &login)
	m.measure("login (wrong password)", "", `mutation { login(username: "`+user+`", password: "wrong horse battery") { accessToken } }`, nil)
	m.measure("refreshToken", "", `mutation { refreshToken(token: "`+login.RefreshToken+`") { accessToken refreshToken } }`, &next)
	m.measure("refreshToken (the same token again, in the grace window)", "", `mutation { refreshToken(token: "`+login.RefreshToken+`") { accessToken refreshToken } }`, &struct{ AccessToken, RefreshToken string }{})
	m.measure("requestPasswordReset (unknown address)", "", `mutation { requestPasswordReset(email: "nobody@example.com") }`, new(bool))
	m.measure("createNote", next.AccessToken, `mutation { createNote(title: "t", body: "b") { id } }`, &struct{ ID string }{})
	m.measure("logout", next.AccessToken, `mutation { logout }`, new(bool))
	m.measure("logout(allSessions: true)", reg.AccessToken, `mutation { logout(allSessions: true) }`, new(bool))
}

type meter struct {
	app   *api.Server
	proxy *proxy
	stats *sqlx.DB
	url   string
	print bool
}

// measure sends one mutation and prints its row of the table; out, if not
// nil, receives the mutation's data field, and an error fails the run.
func (m meter) measure(name, token, query string, out any) {
	rows0, wal0 := m.written()
	q0, rt0 := m.app.Store.Queries(), m.proxy.roundTrips.Load()
	body, _ := json.Marshal(map[string]string{"query": query})
	req, _ := http.NewRequest(http.MethodPost, m.url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		fail("%s: %v", name, err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	// Work the server does after answering (a reset's mail) is its cost too.
	time.Sleep(200 * time.Millisecond)
	q, rt := m.app.Store.Queries()-q0, m.proxy.roundTrips.Load()-rt0
	rows1, wal1 := m.written()
	if out != nil {
		var r struct {
			Data   map[string]json.RawMessage `json:"data"`
			Errors []any                      `json:"errors"`
		}
		if json.Unmarshal(raw, &r) != nil || len(r.Data) != 1 || len(r.Errors) > 0 {
			fail("%s: %s", name, raw)
		}
		for _, v := range r.Data {
			if err := json.Unmarshal(v, out); err != nil {
				fail("%s: %s", name, raw)
			}
		}
	}
	if m.print {
		fmt.Printf("| %s | %d | %d | %d | %d |\n", name, q, rt, rows1-rows0, wal1-wal0)
	}
}

// countRows adds a row trigger to every table of the schema but goose's,
// which advances the sequence cost_rows once per row written.
const countRows = `
CREATE SEQUENCE cost_rows CACHE 1;
CREATE FUNCTION cost_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM nextval('cost_rows'); RETURN NULL; END $$;
DO $$ DECLARE t text; BEGIN
	FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'goose_db_version' LOOP
		EXECUTE format('CREATE TRIGGER cost_count AFTER INSERT OR UPDATE OR DELETE ON %I FOR EACH ROW EXECUTE FUNCTION cost_count()', t);
	END LOOP;
END $$;`

// written returns the rows written so far and the position of the log.
func (m meter) written() (rows, wal int64) {
	err := m.stats.QueryRow(`SELECT (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM cost_rows),
		pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint`).Scan(&rows, &wal)
	if err != nil {
		fail("%v", err)
	}
	return rows, wal
}

// proxy forwards TCP connections to PostgreSQL and counts the round trips
// clients make: a Sync message ends an extended-protocol exchange, a Query
// message is a simple one; each waits for the server's reply. It reads only
// the framing of the protocol (a type byte and a length, after the length-
// only startup message), which is all counting needs; no library exposes the
// messages of a connection it does not own.
type proxy struct {
	addr       string
	roundTrips atomic.Int64
}

func newProxy(target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail("%v", err)
	}
	p := &proxy{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go func() { io.Copy(c, s); c.Close() }()
			go func() { p.count(c, s); s.Close() }()
		}
	}()
	return p
}

// count copies the client's messages to the server, counting Sync ('S')
// and Query ('Q') messages.
func (p *proxy) count(client io.Reader, server io.Writer) {
	var hdr [5]byte
	// The startup message: a length, then the rest.
	if _, err := io.ReadFull(client, hdr[:4]); err != nil {
		return
	}
	n := int64(binary.BigEndian.Uint32(hdr[:4]))
	server.Write(hdr[:4])
	if _, err := io.CopyN(server, client, n-4); err != nil {
		return
	}
	for {
		if _, err := io.ReadFull(client, hdr[:]); err != nil {
			return
		}
		if hdr[0] == 'S' || hdr[0] == 'Q' {
			p.roundTrips.Add(1)
		}
		server.Write(hdr[:])
		if _, err := io.CopyN(server, client, int64(binary.BigEndian.Uint32(hdr[1:]))-4); err != nil {
			return
		}
	}
}
