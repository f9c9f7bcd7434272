package graph

import (
	"encoding/json"
	"net/http"
	"sync"

	"github.com/99designs/gqlgen/graphql"

	"tollgate/auth"
)

// ReasonTooManySockets refines RATE_LIMITED: the client's address holds
// WS_CONNECTIONS_PER_IP open sockets already.
const ReasonTooManySockets = "TOO_MANY_SOCKETS"

// cappedSockets is the WebSocket transport behind a bound on the sockets
// one client address may hold open at once. Each socket keeps a connection,
// two goroutines, its buffers and a token watcher for as long as the client
// likes; without a bound, one address could open them until the process ran
// out of descriptors. The bound is per address (auth.Client.IP, which
// believes X-Forwarded-For only from TRUSTED_PROXIES), so that one client
// cannot use up what the others need.
type cappedSockets struct {
	socketTransport
	open *openSockets
}

var _ graphql.Transport = cappedSockets{}

func capSockets(t socketTransport, perAddress int) graphql.Transport {
	if perAddress <= 0 {
		return t
	}
	return cappedSockets{socketTransport: t, open: &openSockets{max: perAddress, byAddress: make(map[string]int)}}
}

func (t cappedSockets) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	addr := auth.ClientFromContext(r.Context()).IP
	if !t.open.take(addr) {
		// Refused before the upgrade, as JSON, with nothing hijacked.
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]any{{
			"message":    "This address has too many WebSockets open: close one first.",
			"extensions": map[string]any{"code": auth.CodeRateLimited, "reason": ReasonTooManySockets, "retryAfter": 1},
		}}})
		return
	}
	// The transport returns once the socket is closed (gqlgen runs it on
	// this goroutine).
	defer t.open.give(addr)
	t.socketTransport.Do(w, r, exec)
}

// openSockets counts the open sockets of each address. Written here rather
// than taken from a rate limiter: it bounds what is held at once, not how
// often, and a map under a mutex is all that takes.
type openSockets struct {
	max       int
	mu        sync.Mutex
	byAddress map[string]int
}

func (o *openSockets) take(addr string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.byAddress[addr] >= o.max {
		return false
	}
	o.byAddress[addr]++
	return true
}

func (o *openSockets) give(addr string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.byAddress[addr] <= 1 {
		delete(o.byAddress, addr) // the map holds only addresses with sockets open
		return
	}
	o.byAddress[addr]--
}
