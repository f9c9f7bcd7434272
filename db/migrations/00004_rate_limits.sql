-- Counters of attempts per bucket (such as failed logins of one username from
-- one address) in fixed windows, shared by every instance of the database.

-- +goose Up
CREATE TABLE rate_limits (
    bucket       TEXT NOT NULL,
    window_start TIMESTAMP NOT NULL,
    hits         INTEGER NOT NULL,
    PRIMARY KEY (bucket, window_start)
);
CREATE INDEX rate_limits_window_start ON rate_limits (window_start);

-- +goose Down
DROP TABLE rate_limits;
