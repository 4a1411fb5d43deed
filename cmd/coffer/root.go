package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func newRootCommand(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "coffer",
		Short: "Mount an S3 bucket as a directory, encrypted client-side",
		Long: `coffer mounts an S3 bucket (or a local directory) as an ordinary directory
and encrypts everything that leaves the machine: contents, names and attributes.

Start with "coffer init", then "coffer mount MOUNTPOINT".`,
		SilenceErrors: true, // run prints errors as one line
		SilenceUsage:  true, // runtime errors are not usage errors
	}
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &usageError{err: err, hint: c.CommandPath() + " --help"}
	})
	root.PersistentFlags().String("log-level", "info", "log level on stderr: debug, info, warn or error (debug shows file names only on a foreground mount's stderr)")
	root.AddCommand(
		newInitCommand(e),
		newKeygenCommand(e),
		newKeyCommand(e),
		newMountCommand(e),
		newPasswdCommand(e),
		newRotateCommand(e),
		newUnmountCommand(e),
		newVersionCommand(e),
		newLsCommand(e),
		newCatCommand(e),
		newGetCommand(e),
		newPutCommand(e),
		newRmCommand(e),
		newAdoptCommand(e),
		newFsckCommand(e),
		newStatsCommand(e),
	)
	// "coffer completion bash|zsh|fish|powershell" prints a completion
	// script. Added now rather than at Execute, so run's lookup of the
	// command knows "help" and "completion".
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	return root
}

// noArgs is cobra.NoArgs as a usage error.
func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return &usageError{err: fmt.Errorf("unexpected argument %q", args[0]), hint: c.CommandPath() + " --help"}
	}
	return nil
}

// oneArg requires exactly one argument, named what in the message.
func oneArg(what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		switch {
		case len(args) == 0:
			return &usageError{err: fmt.Errorf("missing %s", what), hint: c.CommandPath() + " --help"}
		case len(args) > 1:
			return &usageError{err: fmt.Errorf("expected one %s, got %d arguments", what, len(args)), hint: c.CommandPath() + " --help"}
		}
		return nil
	}
}

// logLevel reads the persistent --log-level flag.
func logLevel(f *pflag.FlagSet) string {
	s, err := f.GetString("log-level")
	if err != nil {
		return "info"
	}
	return s
}
