package graph

import (
	"tollgate/auth"
	"tollgate/graph/model"
)

// userConnection shapes a page of users as a Relay connection.
func userConnection(page *auth.UserPage) *model.UserConnection {
	c := &model.UserConnection{Edges: make([]model.UserEdge, len(page.Users))}
	for i, u := range page.Users {
		c.Edges[i] = model.UserEdge{Cursor: page.Cursors[i], Node: u}
	}
	c.PageInfo.HasNextPage = page.HasNextPage
	if n := len(page.Cursors); n > 0 {
		c.PageInfo.EndCursor = &page.Cursors[n-1]
	}
	return c
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
