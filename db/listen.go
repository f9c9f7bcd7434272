package db

import (
	"context"
	"log/slog"
	"time"

	"github.com/lib/pq"
)

// Listen receives the NOTIFY payloads of the channels of handlers on
// PostgreSQL at url and calls each channel's handler with them, until ctx
// ends. It calls onReconnect once listening has started and again after a
// lost connection is re-established, since notifications sent in between are
// gone.
func Listen(ctx context.Context, url string, handlers map[string]func(payload string), onReconnect func(), logger *slog.Logger) {
	l := pq.NewListener(url, 100*time.Millisecond, 10*time.Second, func(ev pq.ListenerEventType, err error) {
		switch ev {
		case pq.ListenerEventConnectionAttemptFailed, pq.ListenerEventDisconnected:
			if err != nil && ctx.Err() == nil {
				logger.Warn("listener lost its connection", "error", err.Error())
			}
		}
	})
	defer l.Close()
	for channel := range handlers {
		if err := l.Listen(channel); err != nil {
			logger.Warn("listener could not listen; relying on resync", "channel", channel, "error", err.Error())
		}
	}
	// Whatever was announced before LISTEN took effect was missed.
	onReconnect()
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
			if h := handlers[n.Channel]; h != nil {
				h(n.Extra)
			}
		case <-ping.C:
			// A quiet connection may be dead without anyone noticing: ping it.
			go l.Ping()
		}
	}
}
