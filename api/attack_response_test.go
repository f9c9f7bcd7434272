package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tollgate/db/dbtest"
	"tollgate/note"
)

// aliasedBodies is n aliases of notes(first: 100) { body }.
func aliasedBodies(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, " a%d: notes(first: 100) { body }", i)
	}
	b.WriteString(" }")
	return b.String()
}

// rawPost sends query and reads the answer to its end without keeping it
// (the test's own client must not hold what it measures), returning the
// status, the length and the first KiB of the body.
func (s *testServer) rawPost(t *testing.T, token, query string) (int, int64, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query})
	req, err := http.NewRequest(http.MethodPost, s.URL+"/graphql", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0, 0, ""
	}
	defer res.Body.Close()
	head := make([]byte, 1024)
	n, _ := io.ReadFull(res.Body, head)
	rest, _ := io.Copy(io.Discard, res.Body)
	return res.StatusCode, int64(n) + rest, string(head[:n])
}

// heapPeak samples the heap's live objects every millisecond until stop is
// closed, and returns the highest value seen.
func heapPeak(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var peak uint64
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(sample)
			peak = max(peak, sample[0].Value.Uint64())
			select {
			case <-stop:
				out <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return out
}

// A user with 100 notes of 20,000 characters sent 9 aliases of
// notes(first: 100) { body }: 237 bytes, cost 909 under a model that counted
// fields, and an 18 MB answer built in memory; 32 at once held 2.5 GB. The
// cost of a body now follows its size and refuses that query before it
// runs; an answer that still outgrows MAX_RESPONSE_BYTES (multi-byte text)
// stops with RESPONSE_TOO_LARGE; and the answers in flight together are
// bounded, so that 32 of the largest allowed at once stay within a bounded
// heap while an ordinary page keeps being served.
func TestAttack_ResponseAmplification(t *testing.T) {
	dbtest.ForEachInTurn(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		alice := s.register(t, "alice", "correct horse")
		start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		insertNotes(t, s.DB, alice.User.ID, 110, strings.Repeat("b", note.MaxBodyChars), start)

		// The query: refused by its cost, before anything runs.
		status, n, head := s.rawPost(t, alice.AccessToken, aliasedBodies(9))
		if status != http.StatusBadRequest || !strings.Contains(head, `"COMPLEXITY"`) {
			t.Fatalf("9 aliases of 100 bodies: %d %s", status, head)
		}
		if n > 1024 {
			t.Errorf("the refusal took %d bytes", n)
		}
		// One page of 100 whole notes is still an ordinary request.
		if status, n, head := s.rawPost(t, alice.AccessToken, `{ notes(first: 100) { id title body createdAt owner { username } } }`); status != http.StatusOK || n < 100*note.MaxBodyChars {
			t.Fatalf("a page of 100 notes: %d, %d bytes: %s", status, n, head)
		}

		// Multi-byte text passes the estimate and outgrows the byte bound
		// while it resolves: 100 bodies of 20,000 three-byte characters are
		// 6 MB.
		bob := s.register(t, "bob", "correct horse")
		insertNotes(t, s.DB, bob.User.ID, 100, strings.Repeat("€", note.MaxBodyChars), start)
		var tooLarge string
		alloc := allocated(func() {
			status, n, tooLarge = s.rawPost(t, bob.AccessToken, `{ notes(first: 100) { body } }`)
		})
		if status != http.StatusBadRequest || !strings.Contains(tooLarge, `"BAD_REQUEST"`) || !strings.Contains(tooLarge, `"RESPONSE_TOO_LARGE"`) {
			t.Fatalf("6 MB of bodies: %d %s", status, tooLarge)
		}
		if strings.Contains(tooLarge, "€") || n > 1024 {
			t.Errorf("the refusal carried %d bytes of the answer", n)
		}
		t.Logf("a 6 MB answer refused: %d bytes sent, %d MB allocated", n, alloc>>20)
		// The same over GET, and over a socket (where it is the error of a next message).
		get := s.send(t, http.MethodGet, "/graphql?query="+neturl.QueryEscape(`{ notes(first: 100) { body } }`),
			http.Header{"Authorization": {"Bearer " + bob.AccessToken}, "Apollo-Require-Preflight": {"1"}}, "")
		if get.Status != http.StatusBadRequest || len(get.Raw) > 1024 {
			t.Errorf("over GET: %d, %d bytes", get.Status, len(get.Raw))
		}
		get.wantError(t, "BAD_REQUEST", "RESPONSE_TOO_LARGE")
		ws := dialRaw(t, s.URL, nil)
		ws.init(bob.AccessToken)
		ws.write(subscribeFrame("1", `{ notes(first: 100) { body } }`))
		if m := ws.next(10 * time.Second); m.Type != "next" || !strings.Contains(string(m.Payload), `"RESPONSE_TOO_LARGE"`) || len(m.Payload) > 1024 {
			t.Errorf("over a socket: %s %.300s", m.Type, m.Payload)
		}

		// 32 at once of the largest answer still allowed (2 aliases: 4 MB),
		// while alice keeps reading a small page.
		query := aliasedBodies(2)
		stop := make(chan struct{})
		peak := heapPeak(stop)
		var (
			ok, busy, pages atomic.Int64
			pagesDone       = make(chan struct{})
			wg              sync.WaitGroup
		)
		go func() {
			defer close(pagesDone)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if status, _, head := s.rawPost(t, alice.AccessToken, `{ notes(first: 20) { id title createdAt } }`); status != http.StatusOK || !strings.Contains(head, `"notes":[`) {
					t.Errorf("an ordinary page during the burst: %d %s", status, head)
				}
				pages.Add(1)
			}
		}()
		for range 32 {
			wg.Go(func() {
				status, n, head := s.rawPost(t, alice.AccessToken, query)
				switch {
				case status == http.StatusOK && n > 2*100*note.MaxBodyChars:
					ok.Add(1)
				case strings.Contains(head, `"SERVER_BUSY"`) && strings.Contains(head, `"RATE_LIMITED"`):
					busy.Add(1)
				default:
					t.Errorf("%d, %d bytes: %s", status, n, head)
				}
			})
		}
		wg.Wait()
		close(stop)
		<-pagesDone
		heap := <-peak
		t.Logf("32 answers of 4 MB at once: %d served, %d SERVER_BUSY, %d small pages meanwhile, heap peak %d MB", ok.Load(), busy.Load(), pages.Load(), heap>>20)
		if ok.Load() == 0 {
			t.Error("none of the answers was served")
		}
		if pages.Load() == 0 {
			t.Error("no ordinary page was served during the burst")
		}
		// Unbounded, 32 answers of 4 MB held over 500 MB of heap (each is
		// held about four times over: the rows, the answer, its JSON, the
		// write); the answers in flight now hold 32 MB, and the rest of the
		// process (the test's client included) tens more.
		if heap > 250<<20 {
			t.Errorf("heap peaked at %d MB", heap>>20)
		}
	})
}
