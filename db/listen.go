package db

import (
	"context"
	"log/slog"
	"time"

	"github.com/lib/pq"
)

// Listen receives the NOTIFY payloads of channel on PostgreSQL at url and
// calls onNotify with each, until ctx ends. After a lost connection is
// re-established it calls onReconnect, since notifications sent in between
// are gone, and once when listening starts. It returns when ctx ends.
func Listen(ctx context.Context, url, channel string, onNotify func(payload string), onReconnect func(), logger *slog.Logger) {
	l := pq.NewListener(url, 100*time.Millisecond, 10*time.Second, func(ev pq.ListenerEventType, err error) {
		switch ev {
		case pq.ListenerEventConnectionAttemptFailed, pq.ListenerEventDisconnected:
			if err != nil && ctx.Err() == nil {
				logger.Warn("revocation listener lost its connection", "error", err.Error())
			}
		}
	})
	defer l.Close()
	if err := l.Listen(channel); err != nil {
		logger.Warn("revocation listener could not listen; relying on resync", "error", err.Error())
	} else {
		// Whatever was announced before LISTEN took effect was missed.
		onReconnect()
	}
	ping := time.NewTicker(30 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case n, ok := <-l.Notify:
			if !ok {
				return
			}
			if n == nil { // the connection was re-established
				onReconnect()
				continue
			}
			onNotify(n.Extra)
		case <-ping.C:
			// A quiet connection may be dead without anyone noticing: ping it.
			go l.Ping()
		}
	}
}
