package graph

import (
	"context"

	"github.com/99designs/gqlgen/complexity"
	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
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
	// MaxFields and MaxAliases bound the selections of one operation, each
	// use of a fragment counted, introspection included.
	MaxFields  int
	MaxAliases int
	// MaxQueryBytes bounds the query text before it is parsed.
	MaxQueryBytes int
}

// credentialFields are the mutations that check a secret or mint tokens: at
// most one of them may run per operation, so that aliases cannot turn one
// request (and one rate-limit check) into a thousand guesses.
var credentialFields = map[string]bool{"login": true, "register": true, "refreshToken": true, "changePassword": true}

// operationLimits refuses an operation before any resolver runs when it
// batches credential mutations or exceeds the limits.
type operationLimits struct {
	Limits
	es graphql.ExecutableSchema
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

// MutateOperationParameters refuses an overlong query before it is parsed.
func (l *operationLimits) MutateOperationParameters(_ context.Context, p *graphql.RawParams) *gqlerror.Error {
	if len(p.Query) > l.MaxQueryBytes {
		return refused(ReasonQueryTooLong, "The query is longer than %d bytes.", l.MaxQueryBytes)
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
			return refused(ReasonBatchedAuth, "An operation may hold only one of login, register, refreshToken and changePassword.")
		}
	}
	w := walker{doc: oc.Doc}
	depth := w.depth(op.SelectionSet, 0)
	if depth > l.MaxDepth {
		return refused(ReasonDepth, "The operation is %d levels deep; the limit is %d.", depth, l.MaxDepth)
	}
	if w.fields > l.MaxFields {
		return refused(ReasonFields, "The operation selects %d fields; the limit is %d.", w.fields, l.MaxFields)
	}
	if w.aliases > l.MaxAliases {
		return refused(ReasonAliases, "The operation uses %d aliases; the limit is %d.", w.aliases, l.MaxAliases)
	}
	if c := complexity.Calculate(ctx, l.es, op, oc.Variables); c > l.MaxComplexity {
		return refused(ReasonComplexity, "The operation costs %d; the limit is %d.", c, l.MaxComplexity)
	}
	return nil
}

// walker measures a selection set, following fragments.
type walker struct {
	doc             *ast.QueryDocument
	fields, aliases int
	// visiting guards against fragment cycles (validation refuses them, but
	// the walk must not depend on that).
	visiting []string
}

// depth returns the depth of set below level and counts fields and aliases.
func (w *walker) depth(set ast.SelectionSet, level int) int {
	deepest := level
	for _, sel := range set {
		var d int
		switch s := sel.(type) {
		case *ast.Field:
			w.fields++
			if s.Alias != "" && s.Alias != s.Name {
				w.aliases++
			}
			if s.Name == "__schema" || s.Name == "__type" {
				w.countOnly(s.SelectionSet)
				d = level + 1
			} else {
				d = w.depth(s.SelectionSet, level+1)
			}
		case *ast.InlineFragment:
			d = w.depth(s.SelectionSet, level)
		case *ast.FragmentSpread:
			d = w.spread(s.Name, func(f *ast.FragmentDefinition) int { return w.depth(f.SelectionSet, level) }, level)
		}
		deepest = max(deepest, d)
	}
	return deepest
}

// countOnly counts the fields of an introspection subtree, whose depth is exempt.
func (w *walker) countOnly(set ast.SelectionSet) {
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			w.fields++
			if s.Alias != "" && s.Alias != s.Name {
				w.aliases++
			}
			w.countOnly(s.SelectionSet)
		case *ast.InlineFragment:
			w.countOnly(s.SelectionSet)
		case *ast.FragmentSpread:
			w.spread(s.Name, func(f *ast.FragmentDefinition) int { w.countOnly(f.SelectionSet); return 0 }, 0)
		}
	}
}

func (w *walker) spread(name string, walk func(*ast.FragmentDefinition) int, fallback int) int {
	f := w.doc.Fragments.ForName(name)
	if f == nil {
		return fallback
	}
	for _, v := range w.visiting {
		if v == name {
			return fallback
		}
	}
	w.visiting = append(w.visiting, name)
	defer func() { w.visiting = w.visiting[:len(w.visiting)-1] }()
	return walk(f)
}

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
	c.Query.Notes = func(child int) int { return 1 + 50*child }
	c.Query.Sessions = func(child int) int { return 1 + 10*child }
	c.UserConnection.Edges = func(child int) int { return child }
	return c
}
