package api

import "net/http"

// closeAfterChunked closes the connection after answering any request whose
// body came chunked.
//
// A request with both Content-Length and Transfer-Encoding: chunked is the
// classic request-smuggling vector: a proxy in front that goes by the length
// and this server, which goes by the chunks (net/http, as RFC 9112 section
// 6.3 says), disagree on where the request ends, and the rest of the body is
// read as a second request, of someone else's making, on a connection the
// proxy thinks it owns. RFC 9112 section 6.1 asks a server that processes
// such a request by its chunks to close the connection after answering;
// net/http drops the Content-Length header before any handler runs and keeps
// the connection open, so that it answers whatever follows. The two cannot be
// told apart here, so every chunked request loses keep-alive: real GraphQL
// clients send a Content-Length, and a chunked one only pays a new
// connection. Conflicting Content-Length values, lists of them and unknown
// transfer codings net/http refuses by itself (400 and 501, closing).
func closeAfterChunked(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TransferEncoding) > 0 {
			// net/http closes the connection after a response that says so,
			// and reads nothing more from it.
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(w, r)
	})
}
