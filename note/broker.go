package note

import (
	"context"
	"sync"
)

// Broker fans new notes out to the subscriptions of their owner on this
// instance. A slow subscriber loses notes rather than blocking the others.
type Broker struct {
	mu   sync.Mutex
	subs map[string]map[chan *Note]struct{}
}

// NewBroker returns an empty Broker.
func NewBroker() *Broker {
	return &Broker{subs: make(map[string]map[chan *Note]struct{})}
}

// subscriberBuffer is how many notes a subscriber may fall behind by.
const subscriberBuffer = 16

// Subscribe returns a channel of ownerID's new notes, closed when ctx ends.
func (b *Broker) Subscribe(ctx context.Context, ownerID string) <-chan *Note {
	ch := make(chan *Note, subscriberBuffer)
	b.mu.Lock()
	if b.subs[ownerID] == nil {
		b.subs[ownerID] = make(map[chan *Note]struct{})
	}
	b.subs[ownerID][ch] = struct{}{}
	b.mu.Unlock()
	go func() {
		<-ctx.Done()
		b.mu.Lock()
		delete(b.subs[ownerID], ch)
		if len(b.subs[ownerID]) == 0 {
			delete(b.subs, ownerID)
		}
		b.mu.Unlock()
		close(ch)
	}()
	return ch
}

// HasSubscribers reports whether ownerID has a subscription here.
func (b *Broker) HasSubscribers(ownerID string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs[ownerID]) > 0
}

// Publish delivers n to its owner's subscriptions, and to nobody else's.
func (b *Broker) Publish(n Note) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs[n.OwnerID] {
		c := n
		select {
		case ch <- &c:
		default: // full: this subscriber is not keeping up
		}
	}
}

// Len is the number of open subscriptions.
func (b *Broker) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, subs := range b.subs {
		n += len(subs)
	}
	return n
}
