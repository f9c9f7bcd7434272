// Package mail_test measures the mail sender's delivery rate: the outbox on
// SQLite or PostgreSQL, go-mail's client, and a real SMTP server
// (mail/mailtest, go-smtp) in the same process over loopback.
//
//	go test -run x -bench Sender -benchtime 2000x ./bench/mail/
package mail_test

import (
	"context"
	"fmt"
	"net"
	netmail "net/mail"
	"os"
	"strconv"
	"testing"
	"time"

	"tollgate/db"
	"tollgate/db/dbtest"
	"tollgate/mail"
	"tollgate/mail/mailtest"
)

// BenchmarkSender queues b.N mails, then times one sender delivering them
// all (claim a batch, send each over the batch's SMTP connection, mark each
// sent), and reports mails/s. Batch 1 shows what the shared connection and
// the batched claim save.
func BenchmarkSender(b *testing.B) {
	for _, kind := range dbtest.Kinds {
		for _, batch := range []int{1, mail.DefaultBatch} {
			b.Run(fmt.Sprintf("%s/batch=%d", kind, batch), func(b *testing.B) {
				store := db.NewStore(dbtest.Open(b, kind))
				// BENCH_SMTP_ADDR (host:port) sends to a real SMTP server
				// instead, such as the Mailpit the e2e suite builds.
				var server *mailtest.Server
				host, port := smtpAddr(b)
				if host == "" {
					server = mailtest.NewServer(b)
					host, port = server.Host()
				}
				tr, err := mail.NewSMTPTransport(mail.SMTPOptions{Host: host, Port: port,
					From: &netmail.Address{Name: "Tollgate", Address: "no-reply@example.com"}})
				if err != nil {
					b.Fatal(err)
				}
				now := time.Now().UTC()
				for i := range b.N {
					err := store.EnqueueMail(context.Background(), db.OutboxMail{
						ID: fmt.Sprintf("m%08d", i), Kind: "verify_email", Recipient: fmt.Sprintf("user%d@example.com", i),
						Subject: "Verify your address", CreatedAt: now,
						Text: "Open https://tollgate.example/verify-email?token=0123456789abcdef0123456789abcdef to verify your address.",
						HTML: `<p><a href="https://tollgate.example/verify-email?token=0123456789abcdef0123456789abcdef">Verify your address</a></p>`,
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				s := mail.NewSender(mail.SenderConfig{Store: store, Transport: tr, Batch: batch})
				b.ResetTimer()
				start := time.Now()
				for delivered := 0; delivered < b.N; {
					n, err := s.RunOnce(context.Background())
					if err != nil || n == 0 {
						b.Fatalf("RunOnce after %d: %d, %v", delivered, n, err)
					}
					delivered += n
				}
				elapsed := time.Since(start)
				b.StopTimer()
				// An outside relay counts its own; every send was accepted.
				if server != nil && len(server.Messages()) != b.N {
					b.Fatalf("%d messages arrived, want %d", len(server.Messages()), b.N)
				}
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "mails/s")
			})
		}
	}
}

// smtpAddr is BENCH_SMTP_ADDR split into host and port, or "" and 0.
func smtpAddr(b *testing.B) (string, int) {
	addr := os.Getenv("BENCH_SMTP_ADDR")
	if addr == "" {
		return "", 0
	}
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		b.Fatalf("BENCH_SMTP_ADDR: %v", err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		b.Fatalf("BENCH_SMTP_ADDR: %v", err)
	}
	return host, port
}
