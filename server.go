// Command tollgate is a GraphQL API server whose fields are guarded by JWT
// access tokens: register, log in, refresh, and call fields marked @auth.
//
// Configuration comes from the environment; see README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"

	"tollgate/api"
	"tollgate/config"
	"tollgate/db"
	"tollgate/graph"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "tollgate:", err)
		// 2 for a command line that cannot be run as written, 1 for a failure.
		os.Exit(api.ExitCode(err))
	}
}

// run runs the command line args: the server without a command (or with
// serve), otherwise an operator command (api.RunCommand). stdin is read only
// for a password.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	env := api.Env{Getenv: getenv, Stdin: stdin, Stdout: stdout}
	return api.RunCommand(ctx, args, env, func(ctx context.Context) error { return serve(ctx, getenv, stdout) })
}

// idleGCPercent is GOGC between password hashes (auth.Hasher.SetIdleGCPercent).
const idleGCPercent = 200

// memoryLimitRatio is the share of the container's memory that GOMEMLIMIT
// takes by default: the rest is headroom for what the Go runtime does not
// manage (the binary's own pages, kernel buffers of sockets).
const memoryLimitRatio = 0.9

// shutdownGrace is how long in-flight requests may take to finish once a
// shutdown signal arrives.
const shutdownGrace = 20 * time.Second

// serve starts the server and blocks until ctx is cancelled, then shuts down
// gracefully. Tests call it through run with ADDR=127.0.0.1:0 and read the
// address it logs ("listening").
func serve(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	logger := cfg.NewLogger(stdout)
	// Each running hash gets a P of its own (auth.Hasher.GrowProcs), unless
	// the operator chose GOMAXPROCS; GOGC is 200 between hashes and 50 during
	// them (auth.Hasher.SetIdleGCPercent), unless the operator chose GOGC.
	cfg.HashProcs = getenv("GOMAXPROCS") == ""
	if getenv("GOGC") == "" {
		cfg.IdleGCPercent = idleGCPercent
	}
	// A soft limit for the heap, unless the operator chose GOMEMLIMIT: 90%
	// of the container's memory limit (cgroup), or of the machine's memory
	// without one. Near it the collector runs more often and the heap is
	// handed back to the system sooner, so that a burst of large answers is
	// not kept resident (the answers in flight are bounded besides:
	// MAX_RESPONSE_BYTES).
	if getenv("GOMEMLIMIT") == "" {
		limit, err := memlimit.Set(memlimit.WithRatio(memoryLimitRatio),
			memlimit.WithProvider(memlimit.ApplyFallback(memlimit.FromCgroup, memlimit.FromSystem)))
		if err != nil {
			logger.Warn("no memory limit set", "error", err.Error())
		} else {
			logger.Info("memory limit", "gomemlimit_bytes", limit)
		}
	}
	// Listen first: a taken or malformed ADDR should not cost a database migration.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("ADDR: %w", err)
	}
	defer ln.Close()
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		cfg.BindPort(a.Port)
	}
	var metricsLn net.Listener
	if cfg.MetricsAddr != "" {
		if metricsLn, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			return fmt.Errorf("METRICS_ADDR: %w", err)
		}
		defer metricsLn.Close()
	}
	dbx, err := db.Open(ctx, cfg.DatabaseURL, cfg.DatabaseMaxConns)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	defer dbx.Close()
	if err := db.Migrate(ctx, dbx); err != nil {
		return err
	}
	handler, err := api.NewServer(ctx, cfg, dbx, logger, time.Now)
	if err != nil {
		return err
	}

	srv := &http.Server{
		Handler: handler,
		// Read and write deadlines are set per request by the handler
		// (api.requestDeadlines): a WebSocket must outlive them.
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	// Shutdown leaves hijacked connections alone: the sockets are told to go
	// away (1001) as the listener closes, and waited for below.
	srv.RegisterOnShutdown(handler.Sockets.GoingAway)
	servers := []*http.Server{srv}
	listening := []any{"addr", ln.Addr().String(), "database", dbx.DriverName(),
		"production", cfg.Production, "playground", cfg.Playground}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	if metricsLn != nil {
		// A scrape is one short GET: whole-request deadlines suffice here.
		msrv := &http.Server{
			Handler:           handler.Metrics,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       120 * time.Second,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          srv.ErrorLog,
		}
		servers = append(servers, msrv)
		listening = append(listening, "metrics_addr", metricsLn.Addr().String())
		go func() { errc <- msrv.Serve(metricsLn) }()
	}
	logger.Info("listening", listening...)

	// A listener that fails stops the other too.
	var serveErr error
	running := len(servers)
	select {
	case serveErr = <-errc:
		running--
	case <-ctx.Done():
		logger.Info("shutting down")
	}
	shutdownErr := shutdown(servers, handler.Sockets)
	for ; running > 0; running-- {
		if err := <-errc; serveErr == nil && !errors.Is(err, http.ErrServerClosed) {
			serveErr = err
		}
	}
	return errors.Join(serveErr, shutdownErr)
}

// shutdown stops every server within shutdownGrace: no new connections,
// in-flight requests finished, every WebSocket closed with 1001 and its
// close handshake done. Past the grace period the remaining connections,
// sockets included, are cut before the deferred close of the database pulls
// it from under their handlers.
func shutdown(servers []*http.Server, sockets *graph.Sockets) error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(servers)+1)
	for i, srv := range servers {
		wg.Go(func() {
			if errs[i] = srv.Shutdown(ctx); errs[i] != nil {
				srv.Close()
			}
		})
	}
	// The main server's RegisterOnShutdown has sent the close frames;
	// Drain waits for the handshakes (and sends them itself if Shutdown has
	// not got that far).
	wg.Go(func() { errs[len(servers)] = sockets.Drain(ctx) })
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
