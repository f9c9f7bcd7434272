package db

import (
	"context"
	"fmt"
	"time"
)

// Hit counts one attempt in bucket for the window [windowStart, windowEnd),
// atomically (an upsert), and returns the new count. When it opens a new
// window it deletes the bucket's rows of earlier ones: a bucket holds one
// row, so the table grows with the number of keys counted in a window, never
// with the number of requests.
//
// pending counts the attempts still in flight (counted with pending true and
// not yet settled): hits less pending is what has been decided.
func (s *Store) Hit(ctx context.Context, windowStart, windowEnd time.Time, bucket string, inFlight bool) (hits, pending int, err error) {
	add := 0
	if inFlight {
		add = 1
	}
	var row struct {
		Hits     int `db:"hits"`
		InFlight int `db:"in_flight"`
	}
	err = s.q().GetPrepared(ctx, &row, s.rebind(`INSERT INTO rate_limits (bucket, window_start, expires_at, hits, in_flight) VALUES (?, ?, ?, 1, ?)
		ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_limits.hits + 1, in_flight = rate_limits.in_flight + ?
		RETURNING hits, in_flight`), bucket, windowStart, windowEnd, add, add)
	if err != nil {
		return 0, 0, fmt.Errorf("count attempt: %w", translate(err))
	}
	if row.Hits == 1 {
		if _, err := s.q().ExecContext(ctx, s.rebind(`DELETE FROM rate_limits WHERE bucket = ? AND window_start < ?`),
			bucket, windowStart); err != nil {
			return 0, 0, fmt.Errorf("forget ended window: %w", translate(err))
		}
	}
	return row.Hits, row.InFlight, nil
}

// Settle marks an attempt counted in flight as decided: it stays counted.
func (s *Store) Settle(ctx context.Context, windowStart time.Time, bucket string) error {
	if _, err := s.q().ExecContext(ctx, s.rebind(`UPDATE rate_limits SET in_flight = in_flight - 1
		WHERE bucket = ? AND window_start = ? AND in_flight > 0`), bucket, windowStart); err != nil {
		return fmt.Errorf("settle attempt: %w", translate(err))
	}
	return nil
}

// Unhit takes back one attempt counted in bucket for the window that starts
// at windowStart, deleting the row when nothing is left in it: an attempt
// that was refused or taken back leaves no row behind.
//
// inFlight says the attempt was counted in flight and not settled.
func (s *Store) Unhit(ctx context.Context, windowStart time.Time, bucket string, inFlight bool) error {
	sub := 0
	if inFlight {
		sub = 1
	}
	res, err := s.q().ExecContext(ctx, s.rebind(`UPDATE rate_limits
		SET hits = hits - 1, in_flight = CASE WHEN in_flight >= ? THEN in_flight - ? ELSE 0 END
		WHERE bucket = ? AND window_start = ? AND hits > 1`), sub, sub, bucket, windowStart)
	if err != nil {
		return fmt.Errorf("take back attempt: %w", translate(err))
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return nil
	}
	// The last attempt of the window (a concurrent Hit since makes this delete
	// nothing, and the count stays one higher: stricter, never looser).
	if _, err := s.q().ExecContext(ctx, s.rebind(`DELETE FROM rate_limits
		WHERE bucket = ? AND window_start = ? AND hits <= 1`), bucket, windowStart); err != nil {
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

// DeleteOldHits deletes the counters of windows that ended by now.
func (s *Store) DeleteOldHits(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.q().ExecContext(ctx, s.rebind(`DELETE FROM rate_limits WHERE expires_at <= ?`), now)
	if err != nil {
		return 0, fmt.Errorf("delete old rate limits: %w", translate(err))
	}
	return res.RowsAffected()
}
