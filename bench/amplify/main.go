// Command amplify measures what a burst of response-amplifying queries costs
// a running Tollgate in memory: it starts the binary given by -bin on each
// database, registers a user, writes -notes notes of 20,000 characters, then
// fires -concurrency requests at once of a query that selects those bodies
// through aliases, while one client keeps reading an ordinary notes page. It
// samples the server's VmRSS and VmHWM (/proc/<pid>/status) throughout and
// for -settle afterwards, and prints one RESULT line per database and query.
//
//	go build -o /tmp/tollgate . && go run ./bench/amplify -bin /tmp/tollgate
//
// The queries: "aliases9" is nine aliases of notes(first: 100) { body } (237
// bytes, cost 909 under a cost model that counts fields); "allowed" is the
// largest page of bodies that the current cost model still lets through
// (found by asking, from 9 aliases down to 1).
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/lib/pq"
)

func main() {
	var (
		bin         = flag.String("bin", "", "the tollgate binary to measure (required)")
		dbs         = flag.String("db", "sqlite,postgres", "databases to measure")
		pgURL       = flag.String("pg", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL server (a database is created for the run and dropped)")
		notes       = flag.Int("notes", 110, "notes of 20,000 characters to write")
		concurrency = flag.Int("concurrency", 32, "requests fired at once")
		settle      = flag.Duration("settle", time.Minute, "how long to watch RSS after the burst")
		queries     = flag.String("queries", "aliases9,allowed", "which queries to fire")
	)
	flag.Parse()
	if *bin == "" {
		fail("-bin is required")
	}
	for _, name := range strings.Split(*dbs, ",") {
		url, drop := database(name, *pgURL)
		s := start(*bin, url)
		s.seed(*notes)
		for _, q := range strings.Split(*queries, ",") {
			s.burst(name, q, *concurrency, *settle)
		}
		s.stop()
		drop()
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "amplify: "+format+"\n", args...)
	os.Exit(1)
}

// database returns the DATABASE_URL of a fresh database of kind name, and
// what removes it.
func database(name, pgURL string) (string, func()) {
	switch name {
	case "sqlite":
		dir, err := os.MkdirTemp("", "amplify")
		if err != nil {
			fail("%v", err)
		}
		return "sqlite:" + filepath.Join(dir, "app.db"), func() { os.RemoveAll(dir) }
	case "postgres":
		admin, err := sql.Open("postgres", pgURL)
		if err != nil {
			fail("%v", err)
		}
		b := make([]byte, 4)
		rand.Read(b)
		dbName := "amplify_" + hex.EncodeToString(b)
		if _, err := admin.Exec("CREATE DATABASE " + dbName); err != nil {
			fail("create database: %v", err)
		}
		url := strings.Replace(pgURL, "/postgres?", "/"+dbName+"?", 1)
		return url, func() {
			admin.Exec("DROP DATABASE " + dbName + " WITH (FORCE)")
			admin.Close()
		}
	}
	fail("unknown database %q", name)
	return "", nil
}

type server struct {
	cmd   *exec.Cmd
	base  string
	token string
}

var addrRE = regexp.MustCompile(`"addr":"([^"]+)"`)

func start(bin, url string) *server {
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+url, "ADDR=127.0.0.1:0", "LOG_LEVEL=info",
		"REGISTER_PER_IP_PER_HOUR=1000", "LOGIN_ATTEMPTS_PER_IP_PER_MINUTE=1000")
	out, err := cmd.StdoutPipe()
	if err != nil {
		fail("%v", err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		fail("start %s: %v", bin, err)
	}
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		if m := addrRE.FindStringSubmatch(lines.Text()); m != nil && strings.Contains(lines.Text(), "listening") {
			go io.Copy(io.Discard, out)
			return &server{cmd: cmd, base: "http://" + m[1]}
		}
	}
	cmd.Process.Kill()
	fail("the server never said where it listens")
	return nil
}

func (s *server) stop() {
	s.cmd.Process.Signal(os.Interrupt)
	s.cmd.Wait()
}

// post sends query and returns the status, the body's length and the body
// (only its first 4 KiB, so that the harness itself holds little).
func (s *server) post(client *http.Client, query string) (int, int64, []byte, error) {
	body, _ := json.Marshal(map[string]any{"query": query})
	req, _ := http.NewRequest(http.MethodPost, s.base+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, nil, err
	}
	defer resp.Body.Close()
	head := make([]byte, 4096)
	n, _ := io.ReadFull(resp.Body, head)
	rest, err := io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, int64(n) + rest, head[:n], err
}

func (s *server) seed(notes int) {
	c := &http.Client{Timeout: time.Minute}
	_, _, body, err := s.post(c, `mutation { register(username: "amplifier", password: "correct horse battery") { accessToken } }`)
	if err != nil {
		fail("register: %v", err)
	}
	var reg struct {
		Data struct {
			Register struct{ AccessToken string }
		}
	}
	if json.Unmarshal(body, &reg) != nil || reg.Data.Register.AccessToken == "" {
		fail("register: %s", body)
	}
	s.token = reg.Data.Register.AccessToken
	text := strings.Repeat("a", 20000)
	for i := range notes {
		q := fmt.Sprintf(`mutation { createNote(title: "note %d", body: %q) { id } }`, i, text)
		if _, _, body, err := s.post(c, q); err != nil || !bytes.Contains(body, []byte(`"createNote"`)) {
			fail("create note %d: %v %s", i, err, body)
		}
	}
}

func aliases(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, " a%d: notes(first: 100) { body }", i)
	}
	b.WriteString(" }")
	return b.String()
}

// query returns the text of the query called name.
func (s *server) query(name string) string {
	switch name {
	case "aliases9":
		return aliases(9)
	case "allowed":
		c := &http.Client{Timeout: time.Minute}
		for n := 9; n >= 1; n-- {
			q := aliases(n)
			if status, _, _, err := s.post(c, q); err == nil && status == http.StatusOK {
				fmt.Printf("# allowed: %d aliases of notes(first: 100) { body }\n", n)
				return q
			}
		}
		return aliases(1)
	}
	fail("unknown query %q", name)
	return ""
}

// rss reads VmRSS and VmHWM of pid, in bytes.
func rss(pid int) (cur, peak int64) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			cur = kb << 10
		case "VmHWM:":
			peak = kb << 10
		}
	}
	return cur, peak
}

// resetPeak clears VmHWM (writing 5 to /proc/<pid>/clear_refs), so that
// each burst's peak is its own.
func resetPeak(pid int) {
	os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0)
}

const mb = 1 << 20

func (s *server) burst(dbName, queryName string, concurrency int, settle time.Duration) {
	q := s.query(queryName)
	pid := s.cmd.Process.Pid
	// Let the seeding's garbage go first.
	time.Sleep(2 * time.Second)
	before, _ := rss(pid)
	resetPeak(pid)

	ctx, cancel := context.WithCancel(context.Background())
	var pages, pageFailures atomic.Int64
	var pageMax atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		// An ordinary user's page, one after the other, during the burst.
		c := &http.Client{Timeout: time.Minute}
		for ctx.Err() == nil {
			t := time.Now()
			status, _, body, err := s.post(c, `{ notes(first: 20) { id title createdAt } }`)
			if d := time.Since(t).Milliseconds(); d > pageMax.Load() {
				pageMax.Store(d)
			}
			pages.Add(1)
			if err != nil || status != http.StatusOK || !bytes.Contains(body, []byte(`"notes":[`)) {
				pageFailures.Add(1)
			}
		}
	})

	var sent atomic.Int64
	statuses := map[string]int{}
	var mu sync.Mutex
	t0 := time.Now()
	var burst sync.WaitGroup
	for range concurrency {
		burst.Go(func() {
			c := &http.Client{Timeout: 2 * time.Minute}
			status, n, head, err := s.post(c, q)
			sent.Add(n)
			key := strconv.Itoa(status)
			if err != nil {
				key = "error"
			} else if m := regexp.MustCompile(`"reason":"([A-Z_]+)"`).FindSubmatch(head); m != nil {
				key += "/" + string(m[1])
			}
			mu.Lock()
			statuses[key]++
			mu.Unlock()
		})
	}
	// Sample while the burst runs.
	var peakSeen int64
	done := make(chan struct{})
	go func() { burst.Wait(); close(done) }()
sample:
	for {
		select {
		case <-done:
			break sample
		case <-time.After(20 * time.Millisecond):
			if cur, _ := rss(pid); cur > peakSeen {
				peakSeen = cur
			}
		}
	}
	elapsed := time.Since(t0)
	_, hwm := rss(pid)
	cancel()
	wg.Wait()
	after, _ := rss(pid)

	// Then watch the heap go back.
	var back time.Duration = -1
	deadline := time.Now().Add(settle)
	last := after
	for time.Now().Before(deadline) {
		time.Sleep(time.Second)
		last, _ = rss(pid)
		if back < 0 && last < 100*mb {
			back = time.Since(t0)
			break
		}
	}
	fmt.Printf("RESULT db=%s query=%s concurrency=%d statuses=%v sent_mb=%.1f burst_s=%.2f rss_before_mb=%d peak_hwm_mb=%d rss_after_burst_mb=%d rss_end_mb=%d below_100mb_after=%s pages=%d page_failures=%d page_max_ms=%d\n",
		dbName, queryName, concurrency, statuses, float64(sent.Load())/mb, elapsed.Seconds(), before/mb, max(hwm, peakSeen)/mb,
		after/mb, last/mb, durationOr(back, "never (within -settle)"), pages.Load(), pageFailures.Load(), pageMax.Load())
}

func durationOr(d time.Duration, otherwise string) string {
	if d < 0 {
		return otherwise
	}
	return d.Round(time.Second).String()
}
