package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"tollgate/auth"
)

// Options configures the GraphQL handler.
type Options struct {
	Logger *slog.Logger
	// Introspection answers __schema and __type queries (tools and code generators need it).
	Introspection bool
	// SecureCookies names the refresh cookie __Host-… and marks it Secure (production, behind TLS).
	SecureCookies bool
	// Origins (scheme://host[:port]) may open WebSockets and use the refresh
	// cookie besides the server's own origin; each is compared exactly.
	Origins []string
	// SocketInitTimeout is how long a socket may wait before connection_init
	// (zero: 10 s).
	SocketInitTimeout time.Duration
	// Limits bound what one operation may ask for.
	Limits Limits
	// WSConnectionsPerIP bounds the WebSockets open at once from one client
	// address (zero: no bound).
	WSConnectionsPerIP int
	// Metrics, when set, receives the operation counts and latencies.
	Metrics prometheus.Registerer
	// Sockets, when set, keeps the open WebSockets, so that a shutdown can
	// close them (Sockets.GoingAway).
	Sockets *Sockets
}

// NewHandler returns the GraphQL endpoint: POST and GET over HTTP and
// subscriptions over WebSocket, with the
// @auth directive, the error presenter and panic recovery in place. It
// expects the request context to carry the identity (auth.Middleware).
func NewHandler(r *Resolver, opts Options) http.Handler {
	srv := handler.New(NewExecutableSchema(Config{
		Resolvers:  r,
		Directives: DirectiveRoot{Auth: authDirective},
		Complexity: complexityRoot(),
	}))
	// The first transport whose Supports takes a request serves it; the
	// last one refuses, as JSON, whatever none took.
	// gqlgen asks each transport in turn whether it takes the request: POST,
	// by far the most common, first. The order changes nothing else: POST
	// takes no GET, OPTIONS or upgrade.
	srv.AddTransport(postTransport{})
	srv.AddTransport(capSockets(websocketTransport(r.Auth, opts.Origins, opts.SocketInitTimeout, opts.Sockets), opts.WSConnectionsPerIP))
	srv.AddTransport(optionsTransport{})
	srv.AddTransport(getTransport{})
	srv.AddTransport(refusals{})
	// First, so that it sees every response, refused ones included.
	srv.Use(newOperations(opts.Metrics))
	docs := newDocuments(1000)
	srv.SetQueryCache(docs)
	srv.SetParserTokenLimit(parserTokenLimit)
	// "Did you mean …?" recites the schema, and __schema would answer with an
	// internal error: only where introspection is on (graph/rules.go).
	srv.SetValidationRulesFn(validationRules(opts.Introspection))
	srv.SetDisableSuggestion(!opts.Introspection)
	// The order matters: a persisted query's text is looked up before the
	// limits measure it, and remembered only after every check has passed.
	persisted := lru.New[string](1000)
	srv.Use(persistedQueryLookup{cache: persisted})
	srv.Use(&operationLimits{Limits: opts.Limits, docs: docs})
	if opts.Introspection {
		srv.Use(extension.Introspection{})
	}
	srv.Use(persistedQueryStore{cache: persisted})
	var budgets *responseBudgets
	if opts.Limits.MaxResponseBytes > 0 {
		budgets = newResponseBudgets(opts.Limits, docs)
		srv.Use(budgetFields{budgets})
	}
	srv.AroundOperations(operationScope(r.Auth, budgets))
	srv.SetErrorPresenter(errorPresenter(opts.Logger))
	srv.SetRecoverFunc(recoverFunc(opts.Logger))
	return withSocketState(withExchange(opts.SecureCookies, opts.Origins, srv))
}

// SchemaHandler serves the schema as SDL (GET /schema.graphql), for tools
// that read a schema file; mount it only where introspection is on.
func SchemaHandler() http.Handler {
	return schemaHandler(NewExecutableSchema(Config{}))
}

// Codes that the transport itself uses (API.md, "Errors").
const (
	codeBadRequest = "BAD_REQUEST"
	codeInternal   = "INTERNAL_SERVER_ERROR"
)

// errRecovered marks a panic that recoverFunc has already logged.
var errRecovered = errors.New("recovered from panic")

// recoverFunc turns a panic in a resolver into an error for that field; the
// process carries on. The panic and its stack go to the log, never to the client.
func recoverFunc(log *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in resolver",
			"request_id", auth.ClientFromContext(ctx).RequestID,
			"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		return errRecovered
	}
}

// errorPresenter maps every error to the contract's vocabulary: domain errors
// keep their code, reason and public message; gqlgen's own parse and
// validation errors keep theirs; anything else is logged with the request id
// and shown only as a generic INTERNAL_SERVER_ERROR, so that no SQL, driver
// text or internal detail reaches a client.
func errorPresenter(log *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		var (
			gqlErr  *gqlerror.Error
			authErr *auth.Error
		)
		out := &gqlerror.Error{Path: graphql.GetPath(ctx)}
		if errors.As(err, &gqlErr) {
			out.Path, out.Locations, out.Rule = gqlErr.Path, gqlErr.Locations, gqlErr.Rule
		}
		switch {
		case errors.As(err, &authErr):
			out.Message = authErr.Message
			out.Extensions = map[string]any{"code": authErr.Code}
			if authErr.Reason != "" {
				out.Extensions["reason"] = authErr.Reason
			}
			field := authErr.Field
			if fieldPath := graphql.GetPath(ctx); gqlErr != nil && gqlErr.Err != nil && len(gqlErr.Path) == len(fieldPath)+1 {
				// An argument refused while it was read (graph/scalar): gqlgen
				// puts the argument's name after the field's path.
				if name, ok := gqlErr.Path[len(gqlErr.Path)-1].(ast.PathName); ok {
					out.Path = gqlErr.Path[:len(gqlErr.Path)-1]
					if field == "" {
						field = string(name)
					}
				}
			}
			if field != "" {
				out.Extensions["field"] = field
			}
			if authErr.Code == auth.CodeRateLimited {
				out.Extensions["retryAfter"] = authErr.RetryAfter
			}
			return out
		case gqlErr != nil && gqlErr.Err == nil && gqlErr.Extensions["code"] != nil:
			// Written by gqlgen itself (GRAPHQL_PARSE_FAILED, GRAPHQL_VALIDATION_FAILED, …).
			return gqlErr
		case gqlErr != nil && gqlErr.Err == nil && len(gqlErr.Path) == 0:
			// The transport could not read the request. Its message may quote
			// the body, passwords included, so it is replaced.
			out.Message = "The request is not a valid GraphQL request: send a JSON object with a \"query\" string."
			out.Extensions = map[string]any{"code": codeBadRequest}
			return out
		}
		requestID := auth.ClientFromContext(ctx).RequestID
		if !errors.Is(err, errRecovered) {
			log.ErrorContext(ctx, "internal error", "request_id", requestID, "path", out.Path.String(), "error", err.Error())
		}
		out.Message = "Internal server error."
		out.Extensions = map[string]any{"code": codeInternal, "requestId": requestID}
		return out
	}
}
