package config

import (
	"io"
	"log/slog"
	"strings"
)

// LogFormat is how the log is written: JSON lines (the default, for log
// collectors) or slog's key=value text (LOG_FORMAT=text, for a terminal).
type LogFormat int

// The log formats of LOG_FORMAT.
const (
	LogJSON LogFormat = iota
	LogText
)

// String is the LOG_FORMAT value of f.
func (f LogFormat) String() string {
	if f == LogText {
		return "text"
	}
	return "json"
}

// NewLogger returns the logger that c describes, writing to w.
func (c Config) NewLogger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == LogText {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// logFormat reads LOG_FORMAT: json or text.
func (p *parser) logFormat(name string) LogFormat {
	switch strings.ToLower(p.getenv(name)) {
	case "", "json":
		return LogJSON
	case "text":
		return LogText
	}
	p.fail(name, "must be json or text, not %q", p.getenv(name))
	return LogJSON
}

// logLevel reads LOG_LEVEL: debug, info, warn or error.
func (p *parser) logLevel(name string) slog.Level {
	levels := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}
	v := strings.ToLower(p.getenv(name))
	if v == "" {
		return slog.LevelInfo
	}
	level, ok := levels[v]
	if !ok {
		p.fail(name, "must be one of debug, info, warn, error, not %q", p.getenv(name))
	}
	return level
}
