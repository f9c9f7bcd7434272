package graph

import (
	"context"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vektah/gqlparser/v2/ast"

	"tollgate/auth"
)

// Bounds on the operation label: operation names are chosen by clients, so
// only the first maxOperationNames distinct names (of at most
// maxOperationNameBytes) get a label of their own; every later one shares
// "other". Anonymous operations are "anonymous"; requests refused before an
// operation was chosen (unparsable, invalid against the schema, an unknown
// operationName or persisted query) are "unknown".
const (
	maxOperationNames     = 100
	maxOperationNameBytes = 100
	labelAnonymous        = "anonymous"
	labelOther            = "other"
	labelUnknown          = "unknown"
)

// operations is the extension that counts GraphQL queries and mutations by
// name and outcome and times them, refused ones included, and records each
// HTTP request's operation in its auth.Request, for the request's log line.
//
// Subscriptions are left out: one lasts as long as its client wants, so
// neither a count of outcomes nor a duration says much (tollgate_subscriptions
// gauges the open ones), and catching the first message of each would need
// an operation interceptor, which gqlgen's chain pays for with an allocation
// on every request.
type operations struct {
	// total and duration are nil when metrics are off.
	total    *prometheus.CounterVec
	duration *prometheus.HistogramVec

	mu    sync.RWMutex
	names map[string]*operationSeries
	// own counts the names holding a label of their own (the reserved labels aside).
	own int
}

// operationSeries are the series of one operation label, resolved once, so
// that a successful operation costs a map lookup and two atomic updates.
type operationSeries struct {
	label    string
	ok       prometheus.Counter
	duration prometheus.Observer
}

var (
	_ graphql.HandlerExtension    = (*operations)(nil)
	_ graphql.ResponseInterceptor = (*operations)(nil)
)

// newOperations returns the extension; reg nil records operation names only.
func newOperations(reg prometheus.Registerer) *operations {
	o := &operations{names: make(map[string]*operationSeries)}
	if reg == nil {
		return o
	}
	o.total = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_graphql_operations_total",
		Help: "GraphQL operations answered, by operation name (the first 100 names seen; later ones are \"other\") and outcome (ok, or the kind of the first error).",
	}, []string{"operation", "outcome"})
	o.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tollgate_graphql_operation_duration_seconds",
		Help:    "Time from reading a GraphQL query or mutation to its response being ready, by operation name.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"operation"})
	reg.MustRegister(o.total, o.duration)
	return o
}

func (*operations) ExtensionName() string                   { return "TollgateOperations" }
func (*operations) Validate(graphql.ExecutableSchema) error { return nil }

// InterceptResponse counts and times a query or mutation, refused or not
// (a refusal before execution has an operation context too, from the
// transport), and records its name for the request log.
func (o *operations) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	var (
		op    *ast.OperationDefinition
		start time.Time
	)
	if graphql.HasOperationContext(ctx) {
		oc := graphql.GetOperationContext(ctx)
		op, start = oc.Operation, oc.Stats.OperationStart
	}
	// The name goes into the HTTP request's record, for its log line; a
	// socket's operations run side by side and leave it alone.
	if req := auth.RequestFromContext(ctx); req != nil && op != nil && !overSocket(ctx) {
		req.Operation = truncateName(op.Name)
	}
	if o.total == nil || (op != nil && op.Operation == ast.Subscription) {
		return resp // each event of a subscription: not counted
	}
	outcome := outcomeOf(resp)
	var s *operationSeries
	if op != nil {
		s = o.series(op.Name, claims(outcome))
	} else {
		s = o.shared(labelUnknown)
	}
	s.count(o, outcome)
	if !start.IsZero() {
		s.duration.Observe(time.Since(start).Seconds())
	}
	return resp
}

func (s *operationSeries) count(o *operations, outcome string) {
	if outcome == outcomeOK {
		s.ok.Inc()
		return
	}
	o.total.WithLabelValues(s.label, outcome).Inc()
}

// series returns the series of operation name. A name not yet seen gets its
// own label only if claim is set (the operation was valid: a refused one
// must not use up the labels) and fewer than maxOperationNames are taken.
func (o *operations) series(name string, claim bool) *operationSeries {
	switch name {
	case "":
		return o.shared(labelAnonymous)
	case labelAnonymous, labelOther, labelUnknown:
		return o.shared(name)
	}
	o.mu.RLock()
	s := o.names[name]
	o.mu.RUnlock()
	if s != nil {
		return s
	}
	if !claim || len(name) > maxOperationNameBytes {
		return o.shared(labelOther)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if s := o.names[name]; s != nil {
		return s
	}
	if o.own >= maxOperationNames {
		return o.sharedLocked(labelOther)
	}
	o.own++
	s = o.newSeries(name)
	o.names[name] = s
	return s
}

func (o *operations) shared(label string) *operationSeries {
	o.mu.RLock()
	s := o.names[label]
	o.mu.RUnlock()
	if s != nil {
		return s
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.sharedLocked(label)
}

func (o *operations) sharedLocked(label string) *operationSeries {
	if s := o.names[label]; s != nil {
		return s
	}
	s := o.newSeries(label)
	o.names[label] = s
	return s
}

func (o *operations) newSeries(label string) *operationSeries {
	return &operationSeries{
		label:    label,
		ok:       o.total.WithLabelValues(label, outcomeOK),
		duration: o.duration.WithLabelValues(label),
	}
}

// outcomeOK is the outcome of an operation answered without errors.
const outcomeOK = "ok"

// outcomeOf is "ok", or the kind of the response's first error: one of a
// fixed set, whatever the error says, so that it stays a bounded label.
func outcomeOf(resp *graphql.Response) string {
	if resp == nil || len(resp.Errors) == 0 {
		return outcomeOK
	}
	code, _ := resp.Errors[0].Extensions["code"].(string)
	switch code {
	case auth.CodeUnauthenticated:
		return "unauthenticated"
	case auth.CodeForbidden:
		return "forbidden"
	case auth.CodeNotFound:
		return "not_found"
	case auth.CodeBadUserInput:
		return "bad_user_input"
	case auth.CodeRateLimited:
		return "rate_limited"
	case "GRAPHQL_VALIDATION_FAILED":
		return "validation_failed"
	case "GRAPHQL_PARSE_FAILED":
		return "parse_failed"
	case "PERSISTED_QUERY_NOT_FOUND":
		return "persisted_query_not_found"
	case codeBadRequest:
		return "bad_request"
	case codeInternal:
		return "internal"
	}
	return "error"
}

// claims reports whether an operation with outcome may take a label of its
// own: not when it was refused before execution.
func claims(outcome string) bool {
	switch outcome {
	case "validation_failed", "parse_failed", "persisted_query_not_found", "bad_request":
		return false
	}
	return true
}

// truncateName bounds an operation name for the log. Names are GraphQL
// names (ASCII letters, digits, underscores), so a byte cut is safe.
func truncateName(name string) string {
	if len(name) > maxOperationNameBytes {
		return name[:maxOperationNameBytes]
	}
	return name
}
