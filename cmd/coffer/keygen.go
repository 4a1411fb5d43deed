package main

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/spf13/cobra"

	"github.com/cofferfs/coffer/cipher"
)

func newKeygenCommand(e *env) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen --out PATH",
		Short: "Write a new random 32-byte root key file (mode 0600)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usagef("--out PATH is required: the file to create")
			}
			if err := cipher.WriteKeyFile(out); err != nil {
				if errors.Is(err, fs.ErrExist) {
					return fmt.Errorf("%s already exists: keygen never overwrites a key; choose another --out", out)
				}
				return fmt.Errorf("writing key file %s: %w", out, err)
			}
			fmt.Fprintf(e.stdout, "wrote key file %s (mode 0600); keep a copy somewhere safe: data encrypted under it cannot be read without it\n", out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "path of the key file to create (refuses to overwrite)")
	return cmd
}
