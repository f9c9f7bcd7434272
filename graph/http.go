package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"mime"
	"net/http"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// postTransport is gqlgen's POST transport under the status rules of
// GraphQL over HTTP as API.md takes them (see requestErrorWriter), and taking
// every JSON POST that is not a WebSocket upgrade: gqlgen's refuses any
// request with an Upgrade header, and curl adds "Upgrade: h2c".
type postTransport struct {
	transport.POST
}

func (t postTransport) Supports(r *http.Request) bool {
	if r.Method != http.MethodPost || IsWebSocketUpgrade(r) {
		return false
	}
	// The usual header, exactly, needs no parsing (ParseMediaType allocates).
	ct := r.Header.Get("Content-Type")
	if ct == "application/json" {
		return true
	}
	mediaType, _, err := mime.ParseMediaType(ct)
	return err == nil && mediaType == "application/json"
}

func (t postTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	rw := &requestErrorWriter{ResponseWriter: w}
	t.POST.Do(rw, r, &requestErrorExecutor{GraphExecutor: exec, w: rw})
	rw.finish()
}

// requestErrorExecutor notes that a request failed before execution: gqlgen
// answers such a request through DispatchError, and only such a request.
type requestErrorExecutor struct {
	graphql.GraphExecutor
	w *requestErrorWriter
}

func (e *requestErrorExecutor) DispatchError(ctx context.Context, list gqlerror.List) *graphql.Response {
	e.w.requestError = true
	if errcode.GetErrorKind(list) == errcode.KindProtocol {
		e.w.protocolError = true
	}
	return e.GraphExecutor.DispatchError(ctx, list)
}

// requestErrorWriter enforces two rules of GraphQL over HTTP on what gqlgen
// writes:
//
//   - a request that failed before execution (unreadable JSON, a parse,
//     validation or variable-coercion failure, a refused limit) answers
//     HTTP 400, under application/json as under
//     application/graphql-response+json (gqlgen answers 422 under the
//     first); a request that executed stays 200, field errors and all;
//   - the body of a request that never executed has no "data" entry at
//     all (gqlgen writes "data": null), and each of its errors has a code.
//
// The body of a failed request is held until the end of Do and rewritten;
// an executed response passes through untouched.
type requestErrorWriter struct {
	http.ResponseWriter
	requestError  bool // DispatchError answered it
	protocolError bool // and with a parse or validation error
	status        int  // gqlgen's
	wroteHeader   bool
	body          bytes.Buffer
}

func (w *requestErrorWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status // written with the first byte of the body, or by finish
	}
}

func (w *requestErrorWriter) Write(b []byte) (int, error) {
	if w.requestError || w.status >= 400 {
		return w.body.Write(b)
	}
	if !w.wroteHeader {
		w.wroteHeader = true
		if w.status != 0 {
			w.ResponseWriter.WriteHeader(w.status)
		}
	}
	return w.ResponseWriter.Write(b)
}

func (w *requestErrorWriter) finish() {
	if w.wroteHeader {
		return
	}
	w.wroteHeader = true
	status := w.status
	switch {
	case w.protocolError || status == http.StatusUnprocessableEntity:
		status = http.StatusBadRequest
	case status == 0:
		// Refused before execution but not as a parse or validation error
		// (a persisted query the server does not know yet): gqlgen's 200
		// stays, as Apollo Client's persisted-query link expects.
		status = http.StatusOK
	}
	w.ResponseWriter.WriteHeader(status)
	if w.body.Len() > 0 {
		w.ResponseWriter.Write(withoutData(w.body.Bytes()))
	}
}

// withoutData drops the "data" entry of a request error's body and gives a
// BAD_REQUEST code to any error gqlgen wrote without one.
func withoutData(body []byte) []byte {
	var resp map[string]json.RawMessage
	if json.Unmarshal(body, &resp) != nil {
		return body
	}
	delete(resp, "data")
	var errs []map[string]any
	if json.Unmarshal(resp["errors"], &errs) == nil {
		for _, e := range errs {
			ext, _ := e["extensions"].(map[string]any)
			if ext == nil {
				ext = map[string]any{}
				e["extensions"] = ext
			}
			if ext["code"] == nil {
				// gqlgen's own words about the URL or the body, which may
				// quote them.
				ext["code"] = codeBadRequest
				e["message"] = "The request is not a valid GraphQL request."
			}
		}
		resp["errors"], _ = json.Marshal(errs)
	}
	out, err := json.Marshal(resp)
	if err != nil {
		return body
	}
	return append(out, '\n')
}

// optionsTransport answers OPTIONS (gqlgen's, naming the methods served);
// HEAD goes on to refusals.
type optionsTransport struct {
	transport.Options
}

func (optionsTransport) Supports(r *http.Request) bool { return r.Method == http.MethodOptions }

// refusals comes last: it answers every request no transport took, with
// the status GraphQL over HTTP gives it and a JSON body with a BAD_REQUEST
// code (gqlgen answers 400 "transport not supported" without a content type).
type refusals struct{}

var _ graphql.Transport = refusals{}

func (refusals) Supports(*http.Request) bool { return true }

func (refusals) Do(w http.ResponseWriter, r *http.Request, _ graphql.GraphExecutor) {
	switch r.Method {
	case http.MethodGet, http.MethodPost:
		refuse(w, http.StatusUnsupportedMediaType, codeBadRequest, "",
			"Send the operation as JSON with Content-Type: application/json.")
	default:
		w.Header().Set("Allow", "GET, POST, OPTIONS")
		refuse(w, http.StatusMethodNotAllowed, codeBadRequest, "",
			"GraphQL is served over GET and POST only.")
	}
}
