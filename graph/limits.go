package graph

import (
	"context"

	"github.com/99designs/gqlgen/complexity"
	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
)

// Reasons of the operations refused before execution (extensions.reason of
// a GRAPHQL_VALIDATION_FAILED error).
const (
	ReasonBatchedAuth  = "BATCHED_AUTH"
	ReasonDepth        = "DEPTH"
	ReasonComplexity   = "COMPLEXITY"
	ReasonFields       = "FIELDS"
	ReasonAliases      = "ALIASES"
	ReasonQueryTooLong = "QUERY_TOO_LONG"
	ReasonTransport    = "TRANSPORT"
)

// Limits bound what one operation may ask for.
type Limits struct {
	// MaxDepth is the deepest selection allowed, the introspection subtree
	// (__schema, __type) aside: tools send deep but harmless introspection.
	MaxDepth int
	// MaxComplexity is the highest cost allowed, list fields costing their
	// page size times their selection (see complexityRoot).
	MaxComplexity int
	// MaxFields and MaxAliases bound the selections of one document, each
	// spread of a fragment counted as often as it is spread, introspection
	// included.
	MaxFields  int
	MaxAliases int
	// MaxQueryBytes bounds the query text before it is parsed.
	MaxQueryBytes int
	// MaxResponseBytes bounds the JSON of one answer (MAX_RESPONSE_BYTES);
	// zero: no bound.
	MaxResponseBytes int64
	// InFlightBytes bounds what the answers being built and written hold
	// together (zero: eight answers of MaxResponseBytes).
	InFlightBytes int64
}

// parserTokenLimit bounds the tokens of a document, so that a huge one is
// refused while it is parsed. MaxFields (500) fields with an alias and an
// argument each take about 4,000 tokens; GraphiQL's introspection query
// takes about 400.
const parserTokenLimit = 5000

// maxValidationErrors caps the errors that validating one document may
// report. Some rules (overlapping fields) can find a conflict for every pair
// of fields, so a few hundred fields would otherwise answer with hundreds of
// megabytes of errors; the first few say what is wrong just as well.
const maxValidationErrors = 20

// credentialFields are the mutations that check a secret or mint tokens: at
// most one of them may run per operation, so that aliases cannot turn one
// request (and one rate-limit check) into a thousand guesses. resetPassword
// hashes its new password once its token is found: aliased, one token would
// buy a hash per alias. loginWithPasskey opens a session as login does.
var credentialFields = map[string]bool{"login": true, "register": true, "refreshToken": true, "changePassword": true,
	"resetPassword": true, "loginWithPasskey": true}

// operationLimits refuses an operation before it is validated when it
// selects too much, and before any resolver runs when it batches credential
// mutations or costs too much.
type operationLimits struct {
	Limits
	// docs is the executor's cache of validated documents: a document found
	// there was measured when it was first seen, and its cost is kept there.
	docs *documents
	es   graphql.ExecutableSchema
}

var (
	_ graphql.HandlerExtension          = (*operationLimits)(nil)
	_ graphql.OperationParameterMutator = (*operationLimits)(nil)
	_ graphql.OperationContextMutator   = (*operationLimits)(nil)
)

func (*operationLimits) ExtensionName() string { return "OperationLimits" }

func (l *operationLimits) Validate(es graphql.ExecutableSchema) error {
	l.es = es
	return nil
}

func refused(reason, format string, args ...any) *gqlerror.Error {
	err := gqlerror.Errorf(format, args...)
	errcode.Set(err, errcode.ValidationFailed)
	err.Extensions["reason"] = reason
	return err
}

// MutateOperationParameters runs before the executor parses and validates the
// query: it refuses an overlong query, then parses the query itself and
// measures it, so that what validation costs (some of its rules grow with
// the square of the fields) is bounded by the limits. A document already in
// the cache was measured when it was first seen.
func (l *operationLimits) MutateOperationParameters(ctx context.Context, p *graphql.RawParams) *gqlerror.Error {
	if len(p.Query) > l.MaxQueryBytes {
		return refused(ReasonQueryTooLong, "The query is longer than %d bytes.", l.MaxQueryBytes)
	}
	if l.docs != nil {
		if _, ok := l.docs.lookup(ctx, p.Query); ok {
			return nil
		}
	}
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: p.Query}, parserTokenLimit)
	if err != nil {
		return nil // the executor parses it again and reports the error
	}
	return l.check(doc)
}

// check refuses doc if it selects more fields or aliases, or goes deeper,
// than the limits allow.
func (l *operationLimits) check(doc *ast.QueryDocument) *gqlerror.Error {
	c := measureDocument(doc, l.Limits)
	switch {
	case c.fields > l.MaxFields:
		return refused(ReasonFields, "The operation selects more than %d fields.", l.MaxFields)
	case c.aliases > l.MaxAliases:
		return refused(ReasonAliases, "The operation uses more than %d aliases.", l.MaxAliases)
	case c.depth > l.MaxDepth:
		return refused(ReasonDepth, "The operation is more than %d levels deep.", l.MaxDepth)
	}
	return nil
}

// MutateOperationContext runs after validation and before execution.
func (l *operationLimits) MutateOperationContext(ctx context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	op := oc.Operation
	if op.Operation == ast.Subscription && ctx.Value(socketKey{}) == nil {
		// Over plain HTTP a subscription would hold the request open until
		// its deadline, waiting for an event.
		return refused(ReasonTransport, "Subscriptions are served over WebSocket (graphql-transport-ws) only.")
	}
	if op.Operation == ast.Mutation {
		n := 0
		for _, f := range graphql.CollectFields(oc, op.SelectionSet, []string{"Mutation"}) {
			if credentialFields[f.Name] {
				n++
			}
		}
		if n > 1 {
			return refused(ReasonBatchedAuth, "An operation may hold only one of login, register, refreshToken, changePassword and resetPassword.")
		}
	}
	// The document passed measureDocument, so this walk (which expands
	// fragments) visits at most MaxFields fields; it allocates, and is made
	// once per document where the cost cannot vary.
	c := l.docs.of(ctx, oc).memo(memoCost, oc, func() int64 {
		return int64(complexity.Calculate(ctx, l.es, op, oc.Variables))
	})
	if c > int64(l.MaxComplexity) {
		return refused(ReasonComplexity, "The operation costs %d; the limit is %d.", c, l.MaxComplexity)
	}
	return nil
}

// cost is what a selection set asks for: its fields and aliases, each
// fragment spread counted as often as it is spread, and its depth.
type cost struct {
	fields, aliases, depth int
}

// saturation keeps sums of costs from overflowing: a fragment that spreads
// the next one twice, thirty times over, asks for 2^30 fields.
const saturation = 1 << 30

func (c *cost) add(o cost) {
	c.fields = min(c.fields+o.fields, saturation)
	c.aliases = min(c.aliases+o.aliases, saturation)
	c.depth = max(c.depth, o.depth)
}

// measurer computes the cost of a document in time linear in its text: the
// cost of each fragment is computed once and then reused wherever it is
// spread (memoized), and the walk stops as soon as a limit is passed.
type measurer struct {
	limits    Limits
	fragments map[string]*ast.FragmentDefinition
	memo      map[fragmentKey]cost
	// visiting marks the fragments being measured, so that a cycle (which
	// validation refuses, but which the walk must survive) costs nothing more.
	visiting map[fragmentKey]bool
	over     bool
	// steps counts the selections visited, for tests that prove the walk linear.
	steps int
}

// fragmentKey is a fragment in one of the two modes of the walk: inside an
// introspection subtree, where depth is not counted, or outside it.
type fragmentKey struct {
	name          string
	introspection bool
}

// measureDocument returns the cost of every operation of doc together (the
// validator walks them all), plus that of any fragment no operation spreads.
func measureDocument(doc *ast.QueryDocument, limits Limits) cost {
	c, _ := measureSteps(doc, limits)
	return c
}

func measureSteps(doc *ast.QueryDocument, limits Limits) (cost, int) {
	m := &measurer{
		limits:    limits,
		fragments: make(map[string]*ast.FragmentDefinition, len(doc.Fragments)),
		memo:      make(map[fragmentKey]cost),
		visiting:  make(map[fragmentKey]bool),
	}
	for _, f := range doc.Fragments {
		if _, dup := m.fragments[f.Name]; !dup {
			m.fragments[f.Name] = f
		}
	}
	var total cost
	for _, op := range doc.Operations {
		if m.over {
			break
		}
		total.add(m.selections(op.SelectionSet, false))
		m.check(total)
	}
	for _, f := range doc.Fragments {
		if m.over {
			break
		}
		if _, seen := m.memo[fragmentKey{f.Name, false}]; !seen {
			if _, seen := m.memo[fragmentKey{f.Name, true}]; !seen {
				total.add(m.selections(f.SelectionSet, false))
				m.check(total)
			}
		}
	}
	return total, m.steps
}

// check notes that c passes a limit; every cost is part of the total, so the
// total passes it too.
func (m *measurer) check(c cost) {
	if c.fields > m.limits.MaxFields || c.aliases > m.limits.MaxAliases || c.depth > m.limits.MaxDepth {
		m.over = true
	}
}

// selections returns the cost of set. In an introspection subtree depth is
// not counted (its fields still are).
func (m *measurer) selections(set ast.SelectionSet, introspection bool) cost {
	var c cost
	for _, sel := range set {
		if m.over {
			return c
		}
		m.steps++
		switch s := sel.(type) {
		case *ast.Field:
			intro := introspection || s.Name == "__schema" || s.Name == "__type"
			child := m.selections(s.SelectionSet, intro)
			child.fields = min(child.fields+1, saturation)
			if s.Alias != "" && s.Alias != s.Name {
				child.aliases = min(child.aliases+1, saturation)
			}
			switch {
			case introspection:
				child.depth = 0
			case intro:
				child.depth = 1
			default:
				child.depth++
			}
			c.add(child)
		case *ast.InlineFragment:
			c.add(m.selections(s.SelectionSet, introspection))
		case *ast.FragmentSpread:
			c.add(m.spread(fragmentKey{s.Name, introspection}))
		}
		m.check(c)
	}
	return c
}

func (m *measurer) spread(key fragmentKey) cost {
	if c, ok := m.memo[key]; ok {
		return c
	}
	f := m.fragments[key.name]
	if f == nil || m.visiting[key] {
		return cost{} // unknown or cyclic: validation refuses the document
	}
	m.visiting[key] = true
	c := m.selections(f.SelectionSet, key.introspection)
	delete(m.visiting, key)
	m.memo[key] = c
	return c
}

// noteBodyCost is the size class of a note's body: 20,000 characters.
const noteBodyCost = 4

// complexityRoot prices the list fields: a page costs its size times what
// each item selects; unbounded lists are priced at a typical length.
func complexityRoot() ComplexityRoot {
	var c ComplexityRoot
	c.Query.Users = func(child int, first *int, _ *string) int {
		n := 20
		if first != nil && *first > 0 {
			n = *first
		}
		return 1 + n*child
	}
	c.Query.Notes = func(child int, first *int, _ *string) int {
		n := 50
		if first != nil && *first > 0 {
			n = *first
		}
		return 1 + n*child
	}
	c.Query.Sessions = func(child int) int { return 1 + 10*child }
	c.UserConnection.Edges = func(child int) int { return child }
	// A large text field costs its size class: one per 5,000 characters it
	// may hold. Counting it as one field priced nine aliases of
	// notes(first: 100) { body } at 909, under the limit, for an 18 MB answer;
	// they now cost 3,609, while one page of 100 whole notes (about 900) still passes.
	c.Note.Body = func(int) int { return noteBodyCost }
	return c
}
