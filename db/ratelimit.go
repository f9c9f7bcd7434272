package db

import (
	"context"
	"fmt"
	"time"
)

// Hit counts one attempt in bucket for the window that starts at
// windowStart, atomically (an upsert), and returns the new count.
func (s *Store) Hit(ctx context.Context, windowStart time.Time, bucket string) (int, error) {
	var hits int
	err := s.q().GetContext(ctx, &hits, s.rebind(`INSERT INTO rate_limits (bucket, window_start, hits) VALUES (?, ?, 1)
		ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_limits.hits + 1 RETURNING hits`), bucket, windowStart)
	if err != nil {
		return 0, fmt.Errorf("count attempt: %w", translate(err))
	}
	return hits, nil
}

// Unhit takes back one attempt counted in bucket for the window that starts
// at windowStart.
func (s *Store) Unhit(ctx context.Context, windowStart time.Time, bucket string) error {
	if _, err := s.q().ExecContext(ctx, s.rebind(`UPDATE rate_limits SET hits = hits - 1
		WHERE bucket = ? AND window_start = ? AND hits > 0`), bucket, windowStart); err != nil {
		return fmt.Errorf("take back attempt: %w", translate(err))
	}
	return nil
}

// ResetHits forgets the attempts of bucket.
func (s *Store) ResetHits(ctx context.Context, bucket string) error {
	if _, err := s.q().ExecContext(ctx, s.rebind(`DELETE FROM rate_limits WHERE bucket = ?`), bucket); err != nil {
		return fmt.Errorf("reset rate limit: %w", translate(err))
	}
	return nil
}

// DeleteOldHits deletes the counters of windows that started before before.
func (s *Store) DeleteOldHits(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.q().ExecContext(ctx, s.rebind(`DELETE FROM rate_limits WHERE window_start < ?`), before)
	if err != nil {
		return 0, fmt.Errorf("delete old rate limits: %w", translate(err))
	}
	return res.RowsAffected()
}
