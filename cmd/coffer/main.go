package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes of DESIGN.md §6.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	e := newEnv()
	// Called as mount.coffer or umount.fuse.coffer (fstab.go): translate,
	// and keep the translation in os.Args, which the daemon re-executes.
	args, err := helperCommandLine(e, os.Args)
	if err != nil {
		printError(e.stderr, "", err)
		os.Exit(exitFailure)
	}
	os.Args = append(os.Args[:1:1], args...)
	code := run(ctx, args, e)
	stop()
	os.Exit(code)
}

// run executes one coffer command line and returns its exit code.
func run(ctx context.Context, args []string, e *env) int {
	root := newRootCommand(e)
	root.SetArgs(args)
	if len(args) == 0 {
		fmt.Fprint(e.stderr, root.UsageString())
		return exitUsage
	}
	// The completion scripts call the hidden __complete command, which
	// cobra adds at Execute.
	complete := args[0] == cobra.ShellCompRequestCmd || args[0] == cobra.ShellCompNoDescRequestCmd
	if _, _, err := root.Find(args); err != nil && !complete {
		printError(e.stderr, "", &usageError{err: err, hint: "coffer --help"})
		return exitUsage
	}
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	name := ""
	if cmd != nil && cmd != root {
		name = strings.TrimPrefix(cmd.CommandPath(), root.Name()+" ") // "key add", not "add"
	}
	printError(e.stderr, name, err)
	var ue *usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitFailure
}

// printError writes err as a single line: "coffer CMD: message".
func printError(w io.Writer, cmd string, err error) {
	prefix := "coffer"
	if cmd != "" {
		prefix += " " + cmd
	}
	msg := err.Error()
	var ue *usageError
	if errors.As(err, &ue) && ue.hint != "" {
		msg += " (see " + ue.hint + ")"
	}
	fmt.Fprintf(w, "%s: %s\n", prefix, oneLine(msg))
}

// oneLine folds a message onto one line, so every error is one line even
// when a library's message is not.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	s = strings.ReplaceAll(s, "\r", "")
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ; ")), " ")
}

// usageError marks an error in how coffer was called (exit code 2).
type usageError struct {
	err  error
	hint string // where to read the correct usage, e.g. "coffer mount --help"
}

func (u *usageError) Error() string { return u.err.Error() }
func (u *usageError) Unwrap() error { return u.err }

func usagef(format string, a ...any) error {
	return &usageError{err: fmt.Errorf(format, a...)}
}
