// Package mail builds and delivers Tollgate's mail: the templates (plain text
// and HTML, embedded in the binary), the SMTP and log transports, and the
// sender that takes each row of the database's outbox exactly once, retries
// it with backoff while the SMTP server is down or answers 4xx, and marks it
// sent or failed. It knows nothing of why a mail is sent: package auth
// decides that and writes the outbox row in the same transaction as the
// change that caused it.
//
// Where things are: sender.go is the loop (claim, deliver, mark, backoff,
// Notify); transport.go the SMTP transport on go-mail and the development
// log transport; errors.go which failures are permanent and what of an
// error is kept (Reason); the outbox's SQL is db/outbox.go; mailtest is a
// real SMTP server for tests.
//
// Why did this mail not arrive? The answer is here: the outbox row's
// attempts, next_attempt_at and last_error, the sender's log lines and the
// tollgate_mail_* metrics.
package mail
