package local

import (
	"context"
	"errors"
	"log/slog"
)

// CheckBwrap tells whether a local sandbox made with the zero Config would
// run its commands inside bubblewrap: it looks for bwrap on PATH and runs
// a command in the namespaces sandboxes get, as Create would. It returns
// the bwrap binary, or an error saying why commands would run as plain
// processes (not installed, not working here, not Linux) and what to do.
// For diagnostics (moat doctor).
func CheckBwrap(ctx context.Context) (path string, err error) {
	p := New(Config{Logger: slog.New(slog.DiscardHandler)})
	bwrap, fatal, why, fix := p.decide(ctx)
	if err := ctx.Err(); err != nil {
		return "", err
	}
	switch {
	case fatal != nil:
		return "", fatal
	case bwrap == "":
		return "", errors.New(why + ": " + plainConsequence + fix)
	}
	return bwrap, nil
}
