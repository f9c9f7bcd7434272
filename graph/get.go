package graph

import (
	"encoding/json"
	"net/http"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
)

// getTransport is gqlgen's GET transport, whose refusal of a mutation
// (checked before anything executes) is answered as the contract says:
// HTTP 405 with a BAD_REQUEST error, instead of gqlgen's 406. Its request
// errors follow the same status rules as POST's (requestErrorWriter), and it
// takes every GET that is not a WebSocket upgrade (gqlgen's refuses any
// Upgrade header).
type getTransport struct {
	transport.GET
}

func (t getTransport) Supports(r *http.Request) bool {
	return r.Method == http.MethodGet && !IsWebSocketUpgrade(r)
}

func (t getTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	rw := &requestErrorWriter{ResponseWriter: w}
	t.GET.Do(&mutationOverGET{ResponseWriter: rw}, r, &requestErrorExecutor{GraphExecutor: exec, w: rw})
	rw.finish()
	settleBudget(r.Context())
}

type mutationOverGET struct {
	http.ResponseWriter
	refused bool
}

func (m *mutationOverGET) WriteHeader(code int) {
	if code != http.StatusNotAcceptable {
		m.ResponseWriter.WriteHeader(code)
		return
	}
	m.refused = true
	m.Header().Set("Allow", "POST")
	m.Header().Set("Content-Type", "application/json")
	m.ResponseWriter.WriteHeader(http.StatusMethodNotAllowed)
	json.NewEncoder(m.ResponseWriter).Encode(map[string]any{"errors": []map[string]any{{
		"message":    "Only queries may be sent with GET: send mutations with POST.",
		"extensions": map[string]any{"code": codeBadRequest},
	}}})
}

func (m *mutationOverGET) Write(b []byte) (int, error) {
	if m.refused {
		return len(b), nil // gqlgen's own message, already replaced
	}
	return m.ResponseWriter.Write(b)
}
