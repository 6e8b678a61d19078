package main

import (
	"strconv"

	"github.com/spf13/cobra"

	"github.com/moatdev/moat/internal/config"
)

// syncLimits are `moat run`'s bounds on what comes home from the sandbox;
// zero means moat's default.
type syncLimits struct {
	fileBytes, syncBytes sizeValue
	files                int64
}

// addLimitFlags defines --max-file-size, --max-sync-size and --max-files.
func addLimitFlags(cmd *cobra.Command, l *syncLimits) {
	f := cmd.Flags()
	f.Var(&l.fileBytes, "max-file-size", "largest new or changed file the agent's work may bring home, such as 500MiB (default 100MiB)")
	f.Var(&l.syncBytes, "max-sync-size", "most the agent's work may bring home in all, such as 4GiB (default 1GiB)")
	f.Int64Var(&l.files, "max-files", 0, "most new or changed files the agent's work may bring home (default 100000)")
}

// resolve takes the config's limits for the flags not given.
func (l *syncLimits) resolve(set func(string) bool, c config.Config) {
	if !set("max-file-size") {
		l.fileBytes.n = c.MaxFileSize.Bytes
	}
	if !set("max-sync-size") {
		l.syncBytes.n = c.MaxSyncSize.Bytes
	}
	if !set("max-files") {
		l.files = c.MaxFiles
	}
}

// check refuses a negative file count (the sizes refuse theirs as parsed).
func (l syncLimits) check() error {
	if l.files < 0 {
		return usageErrorf("--max-files %d: want a number of files such as 200000 (0 means the default, 100000)", l.files)
	}
	return nil
}

// sizeValue is a flag holding a size such as "100MiB" (config.ParseSize).
type sizeValue struct {
	n    int64
	text string
}

func (v *sizeValue) String() string {
	if v.text != "" || v.n == 0 {
		return v.text
	}
	return strconv.FormatInt(v.n, 10)
}

func (v *sizeValue) Set(s string) error {
	n, err := config.ParseSize(s)
	if err != nil {
		return err
	}
	v.n, v.text = n, s
	return nil
}

func (v *sizeValue) Type() string { return "size" }
