package api

import (
	"bufio"
	"log/slog"
	"net"
	"net/http"
	"time"

	"tollgate/auth"
)

// maxLoggedPath bounds the path written to the log: a client chooses it.
const maxLoggedPath = 256

// logRequest serves r through next and then writes one line for it
// ("request"): request_id, method, path, status, bytes, duration_ms,
// client_ip, and, when the layers below learned them, operation and user_id.
// lw is the writer to record the response with, allocated by the caller;
// start is when the request began.
//
// What is never logged, because it is a credential or may carry one: the
// query string (GET variables), the body (passwords, refresh tokens), any
// header (Authorization, Cookie) and the GraphQL variables.
//
// A WebSocket upgrade is logged when the connection is taken over (status
// 101, the time the upgrade took), not when the socket closes: a
// subscription may stay open for hours, and the line should say at once that
// it began. Its operations run on other goroutines and are not logged here.
//
// r's context carries the auth.Request that withRequest filled with the
// request's id and address.
func logRequest(logger *slog.Logger, lw *logWriter, next http.Handler, w http.ResponseWriter, r *http.Request, start time.Time) {
	if !logger.Enabled(r.Context(), slog.LevelInfo) {
		next.ServeHTTP(w, r)
		return
	}
	*lw = logWriter{ResponseWriter: w, logger: logger, req: r, start: start}
	next.ServeHTTP(lw, r)
	if !lw.logged {
		lw.log()
	}
}

// logWriter records what was written, for the log line. It passes every
// optional interface on: Unwrap for http.ResponseController (deadlines),
// Flush, and Hijack, which logs the upgrade at the moment it happens.
type logWriter struct {
	http.ResponseWriter
	logger *slog.Logger
	req    *http.Request
	start  time.Time
	status int
	bytes  int64
	logged bool
	// tail holds the log line's attributes after the first four (log).
	tail [5]slog.Attr
}

// WriteHeader keeps the first final status (1xx other than 101 are interim).
func (w *logWriter) WriteHeader(code int) {
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *logWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection's own writer.
func (w *logWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush sends what is buffered (http.Flusher); FlushError says if it failed.
func (w *logWriter) Flush() { _ = w.FlushError() }

// FlushError is what http.ResponseController.Flush calls.
func (w *logWriter) FlushError() error {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack hands the connection over (a WebSocket upgrade) and logs the
// request then, with status 101.
func (w *logWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil && !w.logged {
		if w.status == 0 {
			w.status = http.StatusSwitchingProtocols
		}
		w.log()
	}
	return conn, rw, err
}

func (w *logWriter) log() {
	w.logged = true
	r := w.req
	ctx := r.Context()
	status := w.status
	if status == 0 {
		status = http.StatusOK // nothing written: net/http answers 200
	}
	req := auth.RequestFromContext(ctx)
	if req == nil {
		req = &auth.Request{} // served without withRequest (a test)
	}
	client := req.Client
	// A record holds five attributes without an allocation: the line's
	// later ones go in a group with an empty key, which handlers write
	// inline, exactly as if each were passed on its own; its attributes
	// live in the writer, which is allocated already.
	w.tail = [...]slog.Attr{
		slog.Int64("bytes", w.bytes),
		slog.Float64("duration_ms", float64(time.Since(w.start).Microseconds())/1000),
		slog.String("client_ip", client.IP),
		{}, {},
	}
	n := 3
	if req.Operation != "" {
		w.tail[n] = slog.String("operation", req.Operation)
		n++
	}
	if id, err := auth.FromContext(ctx); err == nil {
		w.tail[n] = slog.String("user_id", id.UserID)
		n++
	}
	w.logger.LogAttrs(ctx, slog.LevelInfo, "request",
		slog.String("request_id", client.RequestID),
		slog.String("method", r.Method),
		slog.String("path", truncate(r.URL.Path, maxLoggedPath)),
		slog.Int("status", status),
		slog.Attr{Value: slog.GroupValue(w.tail[:n]...)},
	)
}
