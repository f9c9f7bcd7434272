package graph

import (
	"context"
	"sync/atomic"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/vektah/gqlparser/v2/ast"
)

// documents is the cache of validated documents, by query text, that the
// executor parses through (graphql.Cache), with what is worked out once per
// document: the cost (operationLimits) and the size estimate
// (responseBudgets) of an operation whose answer cannot vary.
//
// An HTTP request looks its document up once: operationLimits, the first to
// ask, leaves what it found in the request's exchange, where the executor's
// own lookup and the checks after it take it. An operation over a socket,
// whose exchange all its operations share, looks it up each time it asks.
type documents struct {
	lru *lru.LRU[*document]
}

// document is a validated document and its memos.
type document struct {
	doc *ast.QueryDocument
	// memos are the cost and the size estimate (memo), plus one: zero
	// until known.
	memos [2]atomic.Int64
}

// What a document's memos hold.
const (
	memoCost = iota // operationLimits' complexity
	memoSize        // responseBudgets' size estimate
)

var _ graphql.Cache[*ast.QueryDocument] = (*documents)(nil)

func newDocuments(size int) *documents {
	return &documents{lru: lru.New[*document](size)}
}

// lookup finds the document of query, for operationLimits before the
// executor parses it, and leaves the answer in an HTTP request's exchange.
func (d *documents) lookup(ctx context.Context, query string) (*document, bool) {
	e, ok := d.lru.Get(ctx, query)
	if ex := httpExchange(ctx); ex != nil {
		ex.query, ex.doc, ex.looked = query, e, true
	}
	return e, ok
}

// find returns the document of query: the one lookup found, else the cache's.
func (d *documents) find(ctx context.Context, query string) (*document, bool) {
	if ex := httpExchange(ctx); ex != nil && ex.looked && ex.query == query {
		return ex.doc, ex.doc != nil
	}
	return d.lru.Get(ctx, query)
}

// Get is the executor's lookup (graphql.Cache).
func (d *documents) Get(ctx context.Context, query string) (*ast.QueryDocument, bool) {
	if e, ok := d.find(ctx, query); ok {
		return e.doc, true
	}
	return nil, false
}

// Add remembers a document the executor validated (graphql.Cache).
func (d *documents) Add(ctx context.Context, query string, doc *ast.QueryDocument) {
	e := &document{doc: doc}
	d.lru.Add(ctx, query, e)
	if ex := httpExchange(ctx); ex != nil && ex.looked && ex.query == query {
		ex.doc = e
	}
}

// of returns the cached document of the operation, nil if it has none.
func (d *documents) of(ctx context.Context, oc *graphql.OperationContext) *document {
	if d == nil {
		return nil
	}
	if e, ok := d.find(ctx, oc.RawQuery); ok && e.doc == oc.Doc {
		return e
	}
	return nil
}

// memo returns compute(), kept as memo which the first time, when the
// operation's answer cannot vary: its document (e, cached; nil if not)
// holds no other operation and it was given no variables. Any other
// operation is computed each time.
func (e *document) memo(which int, oc *graphql.OperationContext, compute func() int64) int64 {
	if e == nil || len(oc.Variables) != 0 || len(e.doc.Operations) != 1 {
		return compute()
	}
	m := &e.memos[which]
	if v := m.Load(); v != 0 {
		return v - 1
	}
	v := compute()
	m.Store(v + 1)
	return v
}

// httpExchange returns the exchange of an HTTP request's operation: nil over
// a socket, whose operations share their upgrade's.
func httpExchange(ctx context.Context) *Exchange {
	if ex := exchangeFrom(ctx); ex != nil && !ex.socket {
		return ex
	}
	return nil
}
