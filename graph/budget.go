package graph

import (
	"context"
	"net/http"
	"reflect"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/complexity"
	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"golang.org/x/sync/semaphore"

	"tollgate/auth"
)

// ReasonResponseTooLarge refines BAD_REQUEST: the answer would hold more
// than MAX_RESPONSE_BYTES.
const ReasonResponseTooLarge = "RESPONSE_TOO_LARGE"

// ErrResponseTooLarge stops an operation whose answer outgrows its budget.
// It is the only error of that answer: nothing of what was resolved is sent.
var ErrResponseTooLarge = &auth.Error{Code: auth.CodeBadRequest, Reason: ReasonResponseTooLarge,
	Message: "The answer would be too large: ask for fewer items (a smaller first) or fewer fields."}

// ErrResponsesBusy refuses an operation for which no room was free in time
// among the bytes that all answers in flight may hold. Nothing ran.
var ErrResponsesBusy = &auth.Error{Code: auth.CodeRateLimited, Reason: auth.ReasonServerBusy, RetryAfter: 1,
	Message: "The server is busy building other answers: try again in a moment."}

// Budget defaults.
const (
	// inFlightResponses is how many answers of MaxResponseBytes may be held
	// at once when Limits.InFlightBytes is not set.
	inFlightResponses = 8
	// busyWait is how long an operation waits for room before SERVER_BUSY.
	busyWait = 2 * time.Second
	// freeBytes is what an operation may hold without taking room from the
	// semaphore: less than its connection's own buffers and goroutine take,
	// so counting it would only put a lock on every small request.
	freeBytes = 8 << 10
	// growBytes is the least an operation takes at a time once its answer
	// outgrows what it reserved.
	growBytes = 64 << 10
	// smallBytes is the largest reservation drawn from the reserve of small
	// answers (responseBudgets.small) rather than from the shared room: an
	// ordinary page never queues behind a burst of large answers.
	smallBytes = 64 << 10
	// sizeUnit is the bytes one unit of sizeRoot's estimate stands for: a
	// key, its punctuation and a short value (a UUID is 43 bytes with its key).
	sizeUnit = 64
)

// responseBudgets bounds what answers hold, one by one and all together.
//
// Each operation reserves room for its answer before it runs, from a
// weighted semaphore of bytes (golang.org/x/sync/semaphore) that every
// answer in flight shares: the reservation is a static estimate of its
// size (sizeRoot), capped at MaxResponseBytes. While fields resolve, their
// values are counted as the JSON they become; an answer that outgrows its
// reservation takes more room (or, if none is free, stops with
// SERVER_BUSY), and one that passes MaxResponseBytes stops with
// RESPONSE_TOO_LARGE: every later field resolves to nothing (an empty list,
// an empty string), so the rest is never built, and the whole answer is
// replaced by that one error. The room is given back once the answer has
// been written.
//
// Reservations of up to smallBytes come from a reserve of their own, one
// MaxResponseBytes in all, so that large answers filling the shared room
// never make an ordinary page wait or fail: what all answers hold together
// is bounded by the shared room plus that reserve.
//
// The cost limit (complexityRoot) already refuses most such operations
// before they run; this bounds the rest, whose size depends on the data.
type responseBudgets struct {
	max      int64
	inFlight *semaphore.Weighted
	// small is the reserve of the reservations of up to smallBytes.
	small *semaphore.Weighted
	wait  time.Duration
	// sizes is the schema priced by sizeRoot, for the estimates.
	sizes graphql.ExecutableSchema
	// docs keeps the estimates of documents whose size cannot vary.
	docs *documents
	// held is what the semaphore has lent out now.
	held    atomic.Int64
	returns *memoryReturner
}

var (
	_ graphql.OperationInterceptor = (*responseBudgets)(nil)
	_ graphql.FieldInterceptor     = (*responseBudgets)(nil)
	_ graphql.FieldInterceptor     = budgetFields{}
)

// budgetFields is the extension that counts each field of an answer
// (responseBudgets.InterceptField); the operation's part runs in
// operationScope, which saves gqlgen's chain a closure per operation.
type budgetFields struct{ rb *responseBudgets }

func (budgetFields) ExtensionName() string                   { return "ResponseBudgets" }
func (budgetFields) Validate(graphql.ExecutableSchema) error { return nil }

// InterceptField is responseBudgets.InterceptField.
func (f budgetFields) InterceptField(ctx context.Context, next graphql.Resolver) (any, error) {
	return f.rb.InterceptField(ctx, next)
}

// newResponseBudgets returns the extension; docs may be nil (no estimate kept).
func newResponseBudgets(limits Limits, docs *documents) *responseBudgets {
	total := limits.InFlightBytes
	if total <= 0 {
		total = inFlightResponses * limits.MaxResponseBytes
	}
	total = max(total, limits.MaxResponseBytes) // one largest answer always fits
	return &responseBudgets{
		max:      limits.MaxResponseBytes,
		inFlight: semaphore.NewWeighted(total),
		small:    semaphore.NewWeighted(max(limits.MaxResponseBytes, smallBytes)),
		wait:     busyWait,
		sizes:    NewExecutableSchema(Config{Complexity: sizeRoot()}),
		docs:     docs,
		returns:  &memoryReturner{},
	}
}

// budget is one answer's account. An HTTP request's lives in its exchange
// (no allocation) and is settled by the transport after the write; an
// operation over a socket gets its own, settled when its answer is made.
type budget struct {
	of       *responseBudgets
	used     atomic.Int64
	stopped  atomic.Bool // over MaxResponseBytes, or no room: nothing more is built
	tooLarge atomic.Bool
	mu       sync.Mutex
	covered  int64 // bytes the answer may hold: freeBytes, or reserved plus acquired
	acquired int64 // taken from the shared room (inFlight)
	reserved int64 // taken from the reserve of small answers
}

type budgetKey struct{}

func budgetFrom(ctx context.Context) *budget {
	if ex := exchangeFrom(ctx); ex != nil && !overSocket(ctx) {
		if ex.budget.of != nil {
			return &ex.budget
		}
		return nil
	}
	b, _ := ctx.Value(budgetKey{}).(*budget)
	return b
}

// InterceptOperation reserves the operation's room, or refuses it with
// SERVER_BUSY after waiting up to busyWait.
func (rb *responseBudgets) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	oc := graphql.GetOperationContext(ctx)
	if rb.max <= 0 || oc == nil || oc.Operation == nil || oc.Operation.Operation == ast.Subscription {
		// A subscription's events are single notes, each bounded by the
		// note's own limits.
		return next(ctx)
	}
	var b *budget
	owned := false // settled here rather than by the HTTP transport
	if ex := exchangeFrom(ctx); ex != nil && !overSocket(ctx) {
		b = &ex.budget
	} else {
		b = &budget{}
		ctx = context.WithValue(ctx, budgetKey{}, b)
		owned = true
	}
	b.of = rb
	b.covered = freeBytes
	estimate := rb.estimate(ctx, oc)
	if estimate > freeBytes {
		if err := rb.reserve(ctx, b, min(estimate, rb.max)); err != nil {
			b.of = nil
			return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{presentedError(ctx, ErrResponsesBusy)}})
		}
	}
	responses := next(ctx)
	return func(ctx context.Context) *graphql.Response {
		resp := responses(ctx)
		if b.stopped.Load() {
			// Nothing of what was resolved is sent: an answer cut short
			// would look whole to a client that ignores errors.
			var err *auth.Error = ErrResponsesBusy
			if b.tooLarge.Load() {
				err = ErrResponseTooLarge
				if ex := exchangeFrom(ctx); ex != nil && !overSocket(ctx) {
					// BAD_REQUEST takes a 4xx (API.md, "Precise rules"); the
					// transport writes the body after this.
					ex.w.WriteHeader(http.StatusBadRequest)
				}
			}
			resp = &graphql.Response{Errors: gqlerror.List{presentedError(ctx, err)}}
		}
		if owned {
			b.settle()
		}
		return resp
	}
}

// reserve takes room for want bytes of b's answer, waiting up to rb.wait:
// from the reserve of small answers for up to smallBytes, else from the
// shared room.
func (rb *responseBudgets) reserve(ctx context.Context, b *budget, want int64) error {
	pool := rb.inFlight
	if want <= smallBytes {
		pool = rb.small
	}
	wait, cancel := context.WithTimeout(ctx, rb.wait)
	defer cancel()
	if err := pool.Acquire(wait, want); err != nil {
		return err
	}
	if pool == rb.small {
		b.reserved, b.covered = want, want
	} else {
		rb.held.Add(want)
		b.acquired, b.covered = want, want
	}
	return nil
}

// estimate is the size the operation's answer is reserved. The walk
// allocates, so the estimate of a document with one operation and no
// variables (most of them: their size cannot change) is kept with it.
func (rb *responseBudgets) estimate(ctx context.Context, oc *graphql.OperationContext) int64 {
	return rb.docs.of(ctx, oc).memo(memoSize, oc, func() int64 {
		// The walk expands fragments; the document passed the field limit.
		return int64(complexity.Calculate(ctx, rb.sizes, oc.Operation, oc.Variables)) * sizeUnit
	})
}

// presentedError is err, one of this file's domain errors, as the error
// presenter shows it (it logs only errors of other kinds).
func presentedError(ctx context.Context, err *auth.Error) *gqlerror.Error {
	return errorPresenter(nil)(ctx, err)
}

// InterceptField counts what each field adds to the answer.
func (rb *responseBudgets) InterceptField(ctx context.Context, next graphql.Resolver) (any, error) {
	res, err := next(ctx)
	if err != nil {
		return res, err
	}
	b := budgetFrom(ctx)
	if b == nil {
		return res, nil
	}
	if b.stopped.Load() {
		return emptied(res), nil
	}
	fc := graphql.GetFieldContext(ctx)
	n := valueSize(res)
	if fc != nil {
		n += int64(len(fc.Field.Alias)) + 4 // "alias": and a comma
	}
	switch b.add(n) {
	case addedOK:
		return res, nil
	case addedTooLarge:
		return nil, ErrResponseTooLarge
	default:
		return emptied(res), nil
	}
}

type addResult int

const (
	addedOK addResult = iota
	addedTooLarge
	addedStopped
)

// add counts n more bytes, taking more room if the answer outgrows what it
// holds.
func (b *budget) add(n int64) addResult {
	used := b.used.Add(n)
	if used > b.of.max {
		if b.tooLarge.CompareAndSwap(false, true) {
			b.stopped.Store(true)
			return addedTooLarge
		}
		return addedStopped
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if used <= b.covered {
		return addedOK
	}
	more := min(max(used-b.covered, growBytes), b.of.max-b.covered)
	if !b.of.inFlight.TryAcquire(more) {
		// No waiting here: this field's goroutine holds what its operation
		// resolved so far, and waiting would hold it longer.
		b.stopped.Store(true)
		return addedStopped
	}
	b.of.held.Add(more)
	b.acquired += more
	b.covered += more
	return addedOK
}

// settle gives back the room of an answer that has been written.
func (b *budget) settle() {
	if b.of == nil {
		return
	}
	b.mu.Lock()
	acquired, reserved := b.acquired, b.reserved
	b.acquired, b.reserved = 0, 0
	b.mu.Unlock()
	if reserved > 0 {
		b.of.small.Release(reserved)
	}
	if acquired > 0 {
		b.of.inFlight.Release(acquired)
		idle := b.of.held.Add(-acquired) == 0
		b.of.returns.released(acquired, b.of.max, idle)
	}
}

// settleBudget settles the budget of an HTTP request once its answer is
// written.
func settleBudget(ctx context.Context) {
	if ex := exchangeFrom(ctx); ex != nil {
		ex.budget.settle()
	}
}

// valueSize is what v takes as JSON, roughly: strings exactly (with their
// escapes), everything else as a short scalar or the punctuation of an
// object or list, whose fields and items are counted as they resolve.
func valueSize(v any) int64 {
	switch v := v.(type) {
	case string:
		return jsonStringSize(v)
	case *string:
		if v != nil {
			return jsonStringSize(*v)
		}
	case []string:
		var n int64
		for _, s := range v {
			n += jsonStringSize(s) + 1
		}
		return n
	}
	return 8
}

// jsonStringSize is the length of s as a JSON string as it is written:
// quotes, six bytes for each control character (\u00XX), two for a quote or
// a backslash, and the HTML escapes writeResponse adds (\u003c for <, >
// and &, \u2028 and \u2029 for those line terminators), so that text made
// of them cannot write six times what was counted.
func jsonStringSize(s string) int64 {
	n := int64(len(s)) + 2
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c == '<' || c == '>' || c == '&':
			n += 5
		case c == '"' || c == '\\':
			n++
		case c == 0xE2 && i+2 < len(s) && s[i+1] == 0x80 && s[i+2]&^1 == 0xA8:
			n += 3
			i += 2
		}
	}
	return n
}

// emptied is what a field resolves to once its answer is stopped: an empty
// list instead of a list (so that its items are never resolved), an empty
// string instead of a string; objects stay, and their fields are emptied in
// turn. Every value of the stopped answer is thrown away.
func emptied(v any) any {
	switch v.(type) {
	case nil:
		return nil
	case string:
		return ""
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice {
		return reflect.Zero(rv.Type()).Interface()
	}
	return v
}

// memoryReturner hands the heap of a burst of large answers back to the
// operating system once the burst is over. The runtime does so by itself
// only slowly: without allocation no collection runs (for up to two
// minutes) and the scavenger keeps what the last heap goal allowed, so a
// burst's peak stayed resident long after it. GOMEMLIMIT bounds the peak;
// this ends the plateau.
type memoryReturner struct {
	since   atomic.Int64 // bytes released since the last return
	running atomic.Bool
	last    atomic.Int64 // unix nanoseconds of the last return
}

// returnEvery is the least time between two returns: each costs a full
// collection.
const returnEvery = 5 * time.Second

// released notes that n bytes of answers were given back; idle says that
// no answer holds any now. Once answers of at least max bytes have come and
// gone and none is left, the heap is returned.
func (m *memoryReturner) released(n, max int64, idle bool) {
	if m.since.Add(n) < max || !idle {
		return
	}
	if time.Since(time.Unix(0, m.last.Load())) < returnEvery || !m.running.CompareAndSwap(false, true) {
		return
	}
	m.since.Store(0)
	go func() {
		defer m.running.Store(false)
		debug.FreeOSMemory()
		m.last.Store(time.Now().UnixNano())
	}()
}

// sizeRoot prices each field in sizeUnit bytes of the answer, for the
// reservation (not the cost limit, complexityRoot): a list holds its page
// size of items, a text field the characters it usually holds.
func sizeRoot() ComplexityRoot {
	var c ComplexityRoot
	page := func(first *int, def int) int {
		if first != nil && *first > 0 {
			return *first
		}
		return def
	}
	c.Query.Users = func(child int, first *int, _ *string) int { return 1 + page(first, 20)*child }
	c.Query.Notes = func(child int, first *int, _ *string) int { return 1 + page(first, 50)*child }
	// SESSIONS_PER_USER (100) at most, 10 factors, 10 recovery codes.
	c.Query.Sessions = func(child int) int { return 1 + 100*child }
	c.Query.MfaFactors = func(child int) int { return 1 + 10*child }
	c.Mutation.GenerateRecoveryCodes = func(int) int { return 10 }
	c.UserConnection.Edges = func(child int) int { return child }
	// A body holds up to 20,000 characters, a title up to 200, a User-Agent
	// 256 bytes: each rounded up, with a unit more for its key and quotes,
	// so that answers of ASCII text stay within their reservation (text of
	// wider characters takes more room as it resolves).
	c.Note.Body = func(int) int { return textUnits(20_000) }
	c.Note.Title = func(int) int { return textUnits(200) }
	c.Session.UserAgent = func(int) int { return textUnits(256) }
	// A QR code as a PNG data URI: a few kilobytes.
	c.TotpEnrollment.QRCode = func(int) int { return 4096 / sizeUnit }
	return c
}

// textUnits is the estimate, in sizeUnit bytes, of a text field of up to
// bytes bytes.
func textUnits(bytes int) int { return (bytes+sizeUnit-1)/sizeUnit + 1 }
