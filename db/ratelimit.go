package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// Hits returns the attempts counted for each bucket in the window that
// starts at windowStart (0 for a bucket with none), in one query.
func (s *Store) Hits(ctx context.Context, windowStart time.Time, buckets ...string) ([]int, error) {
	query, args, err := sqlx.In(`SELECT bucket, hits FROM rate_limits WHERE window_start = ? AND bucket IN (?)`, windowStart, buckets)
	if err != nil {
		return nil, fmt.Errorf("read rate limits: %w", err)
	}
	var rows []struct {
		Bucket string `db:"bucket"`
		Hits   int    `db:"hits"`
	}
	if err := s.q().SelectContext(ctx, &rows, s.rebind(query), args...); err != nil {
		return nil, fmt.Errorf("read rate limits: %w", translate(err))
	}
	out := make([]int, len(buckets))
	for i, b := range buckets {
		for _, r := range rows {
			if r.Bucket == b {
				out[i] = r.Hits
			}
		}
	}
	return out, nil
}

// Hit counts one attempt in each bucket for the window that starts at
// windowStart, atomically (an upsert), and returns the new counts.
func (s *Store) Hit(ctx context.Context, windowStart time.Time, buckets ...string) ([]int, error) {
	out := make([]int, len(buckets))
	err := s.inTx(ctx, func(tx querier) error {
		for i, b := range buckets {
			if err := tx.GetContext(ctx, &out[i], tx.Rebind(`INSERT INTO rate_limits (bucket, window_start, hits) VALUES (?, ?, 1)
				ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_limits.hits + 1 RETURNING hits`), b, windowStart); err != nil {
				return fmt.Errorf("count attempt: %w", translate(err))
			}
		}
		return nil
	})
	return out, err
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
