package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// postTransport serves POST requests as gqlgen's POST transport does, under
// the status rules of GraphQL over HTTP as API.md takes them (see
// requestErrorWriter), and taking every JSON POST that is not a WebSocket
// upgrade: gqlgen's refuses any request with an Upgrade header, and curl adds
// "Upgrade: h2c".
//
// It is written here rather than wrapped because gqlgen's reads the body a
// second time and decodes it through a json.Decoder, and because its error
// for malformed JSON quotes the body, which may hold a password.
type postTransport struct{}

var _ graphql.Transport = postTransport{}

func (postTransport) Supports(r *http.Request) bool {
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

func (postTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	// The writer and the parameters of an HTTP request's operation come
	// with its exchange, in the same allocation.
	var (
		rw     *requestErrorWriter
		params *graphql.RawParams
		raw    *postBody
	)
	if ex := exchangeFrom(r.Context()); ex != nil && ex.post.w.ResponseWriter == nil {
		rw, params, raw = &ex.post.w, &ex.post.params, &ex.post.body
	} else {
		rw, params, raw = &requestErrorWriter{}, &graphql.RawParams{}, &postBody{}
	}
	rw.ResponseWriter = w
	rw.exec = requestErrorExecutor{GraphExecutor: exec, w: rw}
	servePOST(rw, r, &rw.exec, params, raw)
	rw.finish()
	settleBudget(r.Context())
}

// Response content types, shared by every response: each slice is capped at
// its length, so that an Add copies instead of writing into it.
var (
	contentTypeJSON            = []string{"application/json"}
	contentTypeGraphQLResponse = []string{"application/graphql-response+json"}
)

// responseContentType is what gqlgen's POST transport answers with: JSON
// without an Accept header or for */*, otherwise the first of the two
// GraphQL-over-HTTP media types that Accept names, and
// application/graphql-response+json if it names neither.
func responseContentType(r *http.Request) []string {
	accept := r.Header.Get("Accept")
	if accept == "" {
		return contentTypeJSON
	}
	for part := range strings.SplitSeq(accept, ",") {
		mediaType, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mediaType {
		case "*/*", "application/*", "application/json":
			return contentTypeJSON
		case "application/graphql-response+json":
			return contentTypeGraphQLResponse
		}
	}
	return contentTypeGraphQLResponse
}

// rawBody is a request body that was read already (api.limitBody's).
type rawBody interface{ Bytes() []byte }

// servePOST serves one POST request, decoding its body through raw into
// params (both zero).
func servePOST(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, params *graphql.RawParams, raw *postBody) {
	ctx := r.Context()
	w.Header()["Content-Type"] = responseContentType(r)
	start := graphql.Now()
	var (
		body []byte
		err  error
	)
	if b, ok := r.Body.(rawBody); ok {
		body = b.Bytes()
	} else {
		body, err = io.ReadAll(r.Body)
	}
	if err == nil {
		err = decodeParams(body, params, raw)
	}
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		writeResponse(w, exec.DispatchError(ctx, gqlerror.List{{
			Message:    "The request body is not a JSON object with a GraphQL query.",
			Extensions: map[string]any{"code": codeBadRequest},
		}}))
		return
	}
	params.Headers = r.Header
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	rc, opErr := exec.CreateOperationContext(ctx, params)
	if opErr != nil {
		// requestErrorWriter chooses the status.
		writeResponse(w, exec.DispatchError(graphql.WithOperationContext(ctx, rc), opErr))
		return
	}
	responses, ctx := exec.DispatchOperation(ctx, rc)
	writeResponse(w, responses(ctx))
}

// decodeParams reads a GraphQL-over-HTTP request body. Variables and
// extensions are decoded with json.Number for numbers, as gqlgen's transport
// decodes them (its scalars expect it), by a json.Decoder of their own: most
// requests have neither, and pay for no decoder.
//
// It decodes through raw (zero), which escapes to the heap: an HTTP
// request's exchange holds one.
func decodeParams(body []byte, p *graphql.RawParams, raw *postBody) error {
	if err := json.Unmarshal(body, raw); err != nil {
		return err
	}
	p.Query, p.OperationName = raw.Query, raw.OperationName
	if err := decodeObject(raw.Variables, &p.Variables); err != nil {
		return err
	}
	return decodeObject(raw.Extensions, &p.Extensions)
}

// postBody is a GraphQL-over-HTTP request body, variables and extensions
// left to decode.
type postBody struct {
	Query         string          `json:"query"`
	OperationName string          `json:"operationName"`
	Variables     json.RawMessage `json:"variables"`
	Extensions    json.RawMessage `json:"extensions"`
}

// decodeObject decodes a JSON object (or null, or nothing) into m.
func decodeObject(raw json.RawMessage, m *map[string]any) error {
	if len(raw) == 0 {
		return nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	return d.Decode(m)
}

// writeResponse writes resp as JSON, as gqlgen's transports do.
func writeResponse(w io.Writer, resp *graphql.Response) {
	plain := resp.Label == "" && resp.Path == nil && resp.HasNext == nil
	if plain && len(resp.Data) >= streamedData {
		writeLargeResponse(w, resp)
		return
	}
	if plain && len(resp.Errors) == 0 && len(resp.Extensions) == 0 && compactJSON(resp.Data) {
		// The usual answer, data alone: what json.Marshal writes, without
		// its copy of it.
		w.Write(dataOpen)
		writeHTMLEscaped(w, resp.Data)
		w.Write(dataClose)
		return
	}
	b, err := json.Marshal(resp)
	if err != nil {
		panic(fmt.Errorf("marshal the response: %w", err))
	}
	w.Write(b)
}

// streamedData is the size of data from which writeResponse writes it
// where it lies instead of through json.Marshal, which compacts it into a
// buffer that grows by doubling and then copies that: three times the
// answer in garbage, for answers of up to MAX_RESPONSE_BYTES.
const streamedData = 64 << 10

// writeLargeResponse writes what json.Marshal would for resp (its "errors",
// "data" and "extensions", in that order), writing the data, which gqlgen
// built compact, in place, with the escapes json.Marshal adds (HTMLEscape's:
// <, >, &, U+2028 and U+2029, so that the JSON is safe inside HTML too).
func writeLargeResponse(w io.Writer, resp *graphql.Response) {
	var head, tail []byte
	head = append(head, '{')
	if len(resp.Errors) > 0 {
		errs, err := json.Marshal(resp.Errors)
		if err != nil {
			panic(fmt.Errorf("marshal the response's errors: %w", err))
		}
		head = append(append(append(head, `"errors":`...), errs...), ',')
	}
	head = append(head, `"data":`...)
	if len(resp.Extensions) > 0 {
		ext, err := json.Marshal(resp.Extensions)
		if err != nil {
			panic(fmt.Errorf("marshal the response's extensions: %w", err))
		}
		tail = append(append(tail, `,"extensions":`...), ext...)
	}
	tail = append(tail, '}')
	w.Write(head)
	writeHTMLEscaped(w, resp.Data)
	w.Write(tail)
}

// What surrounds the data of an answer without errors, as slices: the
// writers on the way have no WriteString, so a string would be copied.
var (
	dataOpen  = []byte(`{"data":`)
	dataClose = []byte(`}`)
)

// compactJSON reports whether b, JSON, is written as json.Marshal would
// write it but for the escapes of writeHTMLEscaped: not empty (that is
// null), and with no space outside its strings.
func compactJSON(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	inString := false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case inString && c == '\\':
			i++ // the escaped byte, a quote perhaps
		case c == '"':
			inString = !inString
		case !inString && (c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			return false
		}
	}
	return true
}

// writeHTMLEscaped writes b as json.HTMLEscape would, without a buffer of
// its own (HTMLEscape writes only into a bytes.Buffer: the copy avoided).
func writeHTMLEscaped(w io.Writer, b []byte) {
	const hex = "0123456789abcdef"
	start := 0
	for i := 0; i < len(b); i++ {
		c := b[i]
		var esc []byte
		switch {
		case c == '<' || c == '>' || c == '&':
			esc = []byte{'\\', 'u', '0', '0', hex[c>>4], hex[c&0xF]}
		case c == 0xE2 && i+2 < len(b) && b[i+1] == 0x80 && b[i+2]&^1 == 0xA8:
			// U+2028 and U+2029, line terminators to JavaScript.
			esc = []byte{'\\', 'u', '2', '0', '2', hex[b[i+2]&0xF]}
		default:
			continue
		}
		w.Write(b[start:i])
		w.Write(esc)
		if c == 0xE2 {
			i += 2
		}
		start = i + 1
	}
	w.Write(b[start:])
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
	exec          requestErrorExecutor // in the same allocation
	requestError  bool                 // DispatchError answered it
	protocolError bool                 // and with a parse or validation error
	status        int                  // gqlgen's
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
