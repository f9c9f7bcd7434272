package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v3"
)

// Env is what a command reads and writes: the process environment (read
// through config.Load, as the server reads it), standard input for
// passwords, standard output, and the clock of every write.
type Env struct {
	Getenv func(string) string
	Stdin  io.Reader
	Stdout io.Writer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (e Env) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// UsageError is a command line that cannot be run as written: an unknown
// command or flag, a missing or extra argument, a bad flag value. The process
// exits with status 2 for it (ExitCode), as the standard flag package does.
type UsageError struct {
	Err error
}

func (e *UsageError) Error() string { return e.Err.Error() + " (see --help)" }

func (e *UsageError) Unwrap() error { return e.Err }

func usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// ExitCode is the process exit status for what RunCommand returned: 0 for
// nil, 2 for a UsageError, 1 for anything else.
func ExitCode(err error) int {
	var usage *UsageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &usage):
		return 2
	default:
		return 1
	}
}

// RunCommand runs the command line args (args[0] is the program's name):
// serve when no command is named or "serve" is, otherwise one of the
// operator commands below.
func RunCommand(ctx context.Context, args []string, env Env, serve func(context.Context) error) error {
	root := commands(env, serve)
	configure(root)
	return root.Run(ctx, args)
}

// commands is the command tree. Each command is one small function; adding
// a subcommand is writing one more and listing it here.
func commands(env Env, serve func(context.Context) error) *cli.Command {
	return &cli.Command{
		Name:        "tollgate",
		Usage:       "a GraphQL API server whose fields are guarded by JWT access tokens",
		Description: "Without a command, serve. Configuration comes from the environment (README.md).",
		Reader:      env.Stdin,
		Writer:      env.Stdout,
		// Errors are returned to main, which prints them on one line.
		ErrWriter: io.Discard,
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.Args().Present() {
				return usagef("unknown command %q", cmd.Args().First())
			}
			return serve(ctx)
		},
		Commands: []*cli.Command{
			serveCommand(serve),
			migrateCommand(env),
			group("user", "manage users",
				userCreateCommand(env),
				userSetRoleCommand(env),
				userResetMFACommand(env),
				userShowCommand(env),
			),
			group("sessions", "manage sessions",
				sessionsRevokeCommand(env),
			),
			group("keys", "make signing keys",
				keysGenerateCommand(env),
			),
			group("mail", "check mail delivery",
				mailTestCommand(env),
			),
			group("oidc", "check the OpenID Connect providers",
				oidcCheckCommand(env),
			),
			versionCommand(env),
			healthcheckCommand(env),
		},
	}
}

// group is a command that only holds subcommands.
func group(name, usage string, subcommands ...*cli.Command) *cli.Command {
	return &cli.Command{
		Name:     name,
		Usage:    usage,
		Commands: subcommands,
		Action: func(_ context.Context, cmd *cli.Command) error {
			if cmd.Args().Present() {
				return usagef("unknown command %q", commandName(cmd)+" "+cmd.Args().First())
			}
			names := make([]string, len(subcommands))
			for i, c := range subcommands {
				names[i] = c.Name
			}
			return usagef("%s needs a command: %s", commandName(cmd), strings.Join(names, ", "))
		},
	}
}

// leaf is a command that runs action with exactly the positional arguments
// named in argNames (such as "NAME ROLE"), no more and no fewer.
func leaf(name, usage, argNames string, flags []cli.Flag, action cli.ActionFunc) *cli.Command {
	want := len(strings.Fields(argNames))
	return &cli.Command{
		Name:      name,
		Usage:     usage,
		ArgsUsage: argNames,
		Flags:     flags,
		ArgValidator: func(_ context.Context, cmd *cli.Command) error {
			if got := cmd.Args().Len(); got != want {
				if want == 0 {
					return usagef("%s takes no arguments, got %q", commandName(cmd), cmd.Args().First())
				}
				return usagef("%s wants %s, got %d argument(s)", commandName(cmd), argNames, got)
			}
			return nil
		},
		Action: action,
	}
}

// configure makes every command report usage errors as a UsageError and
// leave exiting to main: the library's default would print the help to
// standard error and call os.Exit itself.
func configure(cmd *cli.Command) {
	cmd.OnUsageError = func(_ context.Context, cmd *cli.Command, err error, _ bool) error {
		if cmd.Root() == cmd {
			return &UsageError{Err: err}
		}
		return &UsageError{Err: fmt.Errorf("%s: %w", commandName(cmd), err)}
	}
	cmd.ExitErrHandler = func(context.Context, *cli.Command, error) {}
	cmd.HideVersion = true
	// --help on every command; no "help" command beside it, whose unknown
	// topics would not be usage errors.
	cmd.HideHelpCommand = true
	for _, sub := range cmd.Commands {
		configure(sub)
	}
}

// commandName is cmd's name under the root ("user create"), for errors that
// main prefixes with the program's name already.
func commandName(cmd *cli.Command) string {
	return strings.TrimPrefix(cmd.FullName(), cmd.Root().Name+" ")
}

func serveCommand(serve func(context.Context) error) *cli.Command {
	return leaf("serve", "start the server (the default)", "", nil,
		func(ctx context.Context, _ *cli.Command) error { return serve(ctx) })
}
