package db

import "context"

// Turn lets the tests of package db_test take a refresh's turn (Store.turn).
func (s *Store) Turn(ctx context.Context) (end func(), err error) { return s.turn(ctx) }

// SetRetiredBatch sets how many retired tokens a statement of DeleteRetired
// deletes.
func (s *Store) SetRetiredBatch(n int) { s.retiredBatch = n }
