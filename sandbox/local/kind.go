package local

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"time"

	"github.com/moatdev/moat/internal/shell"
	"github.com/moatdev/moat/sandbox"
)

// Kind describes the local sandbox to the moat CLI (see sandbox.Kind). It
// takes a network mode (sandbox.Env.Network: isolated, none or host).
var Kind = sandbox.Kind{
	Name:             "local",
	Summary:          "a local directory (bubblewrap)",
	About:            "a temporary directory, inside bubblewrap when installed",
	TakesNetwork:     true,
	TakesNoIsolation: true,
	NoIsolationVar:   NoIsolationVar,
	Open: func(ctx context.Context, spec string, env sandbox.Env) (*sandbox.Opened, error) {
		p := New(Config{Network: Network(env.Network), Logger: env.Logger})
		// Containment the host cannot give stops the command here,
		// before anything runs.
		cn, err := p.Containment(ctx)
		if err != nil {
			return nil, err
		}
		if cn.Bwrap == "" && !env.NoIsolation {
			return nil, errUncontained(ctx)
		}
		return &sandbox.Opened{Provider: p}, nil
	},
	Leftovers: func(spec string, env sandbox.Env) sandbox.LeftoverFinder {
		return New(Config{Logger: env.Logger})
	},
	Doctor: func(ctx context.Context, spec string, env sandbox.Env) []sandbox.Check {
		var c sandbox.Checks
		needed := spec == "local"
		checkBwrap(ctx, &c, needed)
		checkContainment(ctx, &c, env, needed)
		return c
	},
}

// NoIsolationVar set to 1 lets the moat CLI run local sandboxes as plain
// processes where bubblewrap cannot contain them, as --no-isolation does.
const NoIsolationVar = "MOAT_LOCAL_NO_ISOLATION"

// errUncontained is the CLI's refusal of a local sandbox that bubblewrap
// cannot contain.
func errUncontained(ctx context.Context) error {
	why := "bubblewrap does not work here"
	if _, err := CheckBwrap(ctx); err != nil {
		why, _, _ = strings.Cut(err.Error(), ": "+plainConsequence)
	}
	return fmt.Errorf("local: the sandbox cannot be contained here (%s): install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap), "+
		"or pass --no-isolation (%s=1) to run the agent's commands as plain processes on this computer, as you, able to read and change all your files", why, NoIsolationVar)
}

// checkBwrap: local sandboxes run inside bubblewrap. Never a failure:
// without it local sandboxes still work, unisolated.
func checkBwrap(ctx context.Context, c *sandbox.Checks, needed bool) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	path, err := CheckBwrap(ctx)
	switch {
	case err == nil:
		c.Add(sandbox.CheckOK, "bubblewrap", path+" works: local sandboxes are isolated")
	case runtime.GOOS != "linux":
		c.Add(sandbox.CheckInfo, "bubblewrap", err.Error())
	case needed:
		c.Add(sandbox.CheckWarn, "bubblewrap", err.Error(), "fix: install bubblewrap (e.g. apt install bubblewrap)")
	default:
		c.Add(sandbox.CheckInfo, "bubblewrap", err.Error()+" (only --sandbox local uses it)")
	}
}

// checkContainment: what a local sandbox runs in, as Create would find it.
// It fails only when the sandbox is local and moat would refuse to run.
func checkContainment(ctx context.Context, c *sandbox.Checks, env sandbox.Env, needed bool) {
	network, settingsFile := env.Network, env.SettingsFile
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	p := New(Config{Network: Network(network), Logger: slog.New(slog.DiscardHandler)})
	cn, err := p.Containment(ctx)
	status := func(s sandbox.CheckStatus) sandbox.CheckStatus {
		if needed {
			return s
		}
		return sandbox.CheckInfo
	}
	switch {
	case err != nil:
		c.Add(status(sandbox.CheckFail), "containment", err.Error())
	case cn.Bwrap == "" && env.NoIsolation:
		c.Add(status(sandbox.CheckWarn), "containment", cn.String()+" (--no-isolation): commands can write anywhere you can and reach everything on this computer")
	case cn.Bwrap == "":
		c.Add(status(sandbox.CheckFail), "containment", cn.String()+": moat refuses to run a local sandbox uncontained",
			"fix: install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap), or set "+NoIsolationVar+"=1 to run its commands as plain processes")
	case cn.Network == NetworkHost:
		c.Add(status(sandbox.CheckWarn), "containment", cn.String()+": the sandbox reaches this computer's loopback services and abstract Unix sockets",
			"fix: leave out --network host (and network = \"host\" in "+settingsFile+") unless the agent needs them")
	case cn.Network == NetworkIsolated:
		c.Add(sandbox.CheckOK, "containment", cn.String()+": its own network namespace, outbound connections and DNS through "+cn.Stack+"; this computer's loopback services and abstract Unix sockets unreachable")
	default:
		c.Add(sandbox.CheckOK, "containment", cn.String()+": no network at all (an agent cannot reach its model's API)")
	}
}

// HostPaths returns WorkDir, which is on this computer, and the
// sandbox's directory and record (sandbox.OnHost).
func (h *handle) HostPaths() (work string, all []string, ok bool) {
	return h.work, []string{h.dir, RecordPath(h.dir)}, true
}

var _ sandbox.OnHost = (*handle)(nil)

// Access says how to get to the sandbox's work directory, and how to
// remove all of its directory, also what the agent made read-only
// (sandbox.Reachable).
func (h *handle) Access() sandbox.Access {
	q := shell.Quote
	return sandbox.Access{Reach: "cd " + q(h.work), Remove: "chmod -R u+w -- " + q(h.dir) + " && rm -rf -- " + q(h.dir) + " " + q(RecordPath(h.dir))}
}

var _ sandbox.Reachable = (*handle)(nil)
