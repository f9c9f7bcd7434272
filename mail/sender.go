package mail

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"

	"tollgate/db"
)

// Outcome is what became of one delivery attempt, for metrics.
type Outcome int

// The outcomes of an attempt.
const (
	// OutcomeSent: the SMTP server took the mail (250 to DATA).
	OutcomeSent Outcome = iota
	// OutcomeRetried: a transient failure; the mail is due again later.
	OutcomeRetried
	// OutcomeFailed: a permanent failure, or MAIL_RETRY_FOR ran out.
	OutcomeFailed
	// NumOutcomes is the number of outcomes, for arrays indexed by them.
	NumOutcomes
)

// String is the outcome's metric label.
func (o Outcome) String() string {
	switch o {
	case OutcomeSent:
		return "sent"
	case OutcomeRetried:
		return "retried"
	case OutcomeFailed:
		return "failed"
	}
	return "unknown"
}

// Events is told of each attempt's outcome (the server's metrics).
type Events interface {
	MailDelivery(Outcome)
}

// Defaults of SenderConfig.
const (
	DefaultPoll        = 5 * time.Second
	DefaultBatch       = 20
	DefaultLease       = 5 * time.Minute
	DefaultSendTimeout = 30 * time.Second
	DefaultBackoffBase = 30 * time.Second
	DefaultBackoffMax  = 10 * time.Minute
	DefaultKeep        = 7 * 24 * time.Hour
	DefaultCleanup     = time.Hour
)

// SenderConfig configures a Sender. Zero durations and counts take the
// defaults above.
type SenderConfig struct {
	Store     *db.Store
	Transport Transport
	Logger    *slog.Logger
	// Events, when set, counts the outcomes.
	Events Events
	// RetryFor (MAIL_RETRY_FOR) is how long after its creation a mail is
	// still retried; after that a transient failure marks it failed.
	RetryFor time.Duration
	// Now is the clock; Rand(n) returns a number in [0, n) for the jitter.
	// Tests inject both, so that backoff never needs a sleep.
	Now  func() time.Time
	Rand func(n int64) int64
	// Poll is how often the outbox is looked at when nothing was notified:
	// it finds mails queued by other instances and mails due for a retry.
	Poll time.Duration
	// Batch is how many mails one claim takes.
	Batch int
	// Lease is how long a claim holds its rows; a sender that dies leaves
	// them to be claimed again after it.
	Lease time.Duration
	// SendTimeout bounds one delivery (on top of the transport's own
	// per-command timeout).
	SendTimeout time.Duration
	// BackoffBase is the delay after the first failure, doubled after each
	// further one up to BackoffMax; each delay is jittered into [d/2, d].
	BackoffBase, BackoffMax time.Duration
	// Keep is how long sent and failed rows (their bodies erased) stay for
	// inspection; Cleanup how often older ones are deleted.
	Keep, Cleanup time.Duration
}

// Sender delivers the outbox: each instance runs one, and each mail is
// taken by exactly one of them (db.Store.ClaimMail).
type Sender struct {
	cfg    SenderConfig
	notify chan struct{}
}

// NewSender returns a sender; Run starts it.
func NewSender(cfg SenderConfig) *Sender {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Poll, DefaultPoll)
	def(&cfg.Lease, DefaultLease)
	def(&cfg.SendTimeout, DefaultSendTimeout)
	def(&cfg.BackoffBase, DefaultBackoffBase)
	def(&cfg.BackoffMax, DefaultBackoffMax)
	def(&cfg.Keep, DefaultKeep)
	def(&cfg.Cleanup, DefaultCleanup)
	def(&cfg.RetryFor, 24*time.Hour)
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Int64N
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Sender{cfg: cfg, notify: make(chan struct{}, 1)}
}

// Notify wakes the sender at once: the flows call it after committing a
// transaction that queued a mail, so that a mail on this instance does not
// wait for the next poll. It never blocks.
func (s *Sender) Notify() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends. What it has not delivered by then stays in
// the outbox for the next start (or another instance).
func (s *Sender) Run(ctx context.Context) {
	poll := time.NewTicker(s.cfg.Poll)
	defer poll.Stop()
	cleanup := time.NewTicker(s.cfg.Cleanup)
	defer cleanup.Stop()
	for {
		// A full batch means more may be due: claim again at once.
		for {
			n, err := s.RunOnce(ctx)
			if err != nil && ctx.Err() == nil {
				s.cfg.Logger.Warn("mail outbox: claim failed", "error", err.Error())
			}
			if err != nil || n < s.cfg.Batch || ctx.Err() != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-s.notify:
		case <-poll.C:
		case <-cleanup.C:
			s.Cleanup(ctx)
		}
	}
}

// Cleanup deletes the sent and failed rows older than Keep.
func (s *Sender) Cleanup(ctx context.Context) {
	n, err := s.cfg.Store.DeleteOldMail(ctx, s.now().Add(-s.cfg.Keep))
	if err != nil && ctx.Err() == nil {
		s.cfg.Logger.Warn("mail outbox: cleanup failed", "error", err.Error())
	}
	if n > 0 {
		s.cfg.Logger.Debug("mail outbox: deleted old rows", "rows", n)
	}
}

func (s *Sender) now() time.Time { return s.cfg.Now().UTC() }

// RunOnce claims one batch of due mails, delivers each and records the
// outcome. It returns how many it claimed.
func (s *Sender) RunOnce(ctx context.Context) (int, error) {
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	batch, err := s.cfg.Store.ClaimMail(ctx, s.now(), s.cfg.Lease, s.cfg.Batch)
	if err != nil || len(batch) == 0 {
		return 0, err
	}
	if idle, ok := s.cfg.Transport.(interface{ Idle() }); ok {
		defer idle.Idle()
	}
	// Outcomes are written even when ctx ends meanwhile: a mail that was
	// delivered must be marked, or it would go out again after the lease.
	bg := context.WithoutCancel(ctx)
	for i, m := range batch {
		if ctx.Err() != nil || !s.now().Add(s.cfg.SendTimeout).Before(m.LockedUntil) {
			// Stopping, or the claim might run out while this mail is
			// sent (another sender could take it too): hand the rest back.
			s.release(bg, batch[i:])
			break
		}
		s.deliver(bg, m)
	}
	return len(batch), nil
}

func (s *Sender) deliver(ctx context.Context, m db.ClaimedMail) {
	log := s.cfg.Logger.With("mail_id", m.ID, "kind", m.Kind, "attempt", m.Attempts+1)
	sendCtx, cancel := context.WithTimeout(ctx, s.cfg.SendTimeout)
	err := s.cfg.Transport.Send(sendCtx, m.OutboxMail)
	cancel()
	now := s.now()
	markCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err == nil {
		if err := s.cfg.Store.MarkMailSent(markCtx, m.ID, now); err != nil {
			log.Error("mail outbox: sent but not marked (it will be sent again after the lease)", "error", err.Error())
		}
		log.Info("mail delivered") // to the SMTP server, or to the log transport
		s.event(OutcomeSent)
		return
	}
	reason := Reason(err, m.Recipient)
	next := now.Add(s.backoff(m.Attempts))
	deadline := m.CreatedAt.Add(s.cfg.RetryFor)
	switch {
	case IsPermanent(err):
		s.fail(markCtx, log, m, now, reason, "mail refused")
	case !now.Before(deadline):
		s.fail(markCtx, log, m, now, "gave up after MAIL_RETRY_FOR: "+reason, "mail given up")
	default:
		if next.After(deadline) {
			next = deadline // one last attempt when the time runs out
		}
		if err := s.cfg.Store.MarkMailRetry(markCtx, m.ID, next, reason); err != nil {
			log.Error("mail outbox: mark for retry failed", "error", err.Error())
		}
		log.Warn("mail delivery failed, will retry", "error", reason, "next_attempt_at", next)
		s.event(OutcomeRetried)
	}
}

func (s *Sender) fail(ctx context.Context, log *slog.Logger, m db.ClaimedMail, now time.Time, reason, msg string) {
	if err := s.cfg.Store.MarkMailFailed(ctx, m.ID, now, reason); err != nil {
		log.Error("mail outbox: mark failed failed", "error", err.Error())
	}
	log.Error(msg, "error", reason)
	s.event(OutcomeFailed)
}

func (s *Sender) release(ctx context.Context, rest []db.ClaimedMail) {
	ids := make([]string, len(rest))
	for i, m := range rest {
		ids[i] = m.ID
	}
	if err := s.cfg.Store.ReleaseMail(ctx, ids); err != nil {
		s.cfg.Logger.Warn("mail outbox: release failed (the rows are taken again after the lease)", "error", err.Error())
	}
}

func (s *Sender) event(o Outcome) {
	if s.cfg.Events != nil {
		s.cfg.Events.MailDelivery(o)
	}
}

// backoff is the delay after attempts+1 failures: BackoffBase doubled per
// earlier failure, capped at BackoffMax, then jittered into [d/2, d] so that
// mails queued together (an SMTP outage) do not all come back at once.
func (s *Sender) backoff(attempts int) time.Duration {
	d := s.cfg.BackoffMax
	if attempts < 30 {
		if e := s.cfg.BackoffBase << attempts; e > 0 && e < d {
			d = e
		}
	}
	half := d / 2
	return half + time.Duration(s.cfg.Rand(int64(d-half)+1))
}
