package exedevtest

import (
	"context"
	"errors"
	"fmt"

	"github.com/moatdev/moat/sandbox"
	"github.com/moatdev/moat/sandbox/exedev"
)

// Kind describes the emulator as a sandbox kind of the moat CLI
// ("emulator", see sandbox.Kind): each Open starts an emulator in the
// process, whose VMs end with it.
var Kind = sandbox.Kind{
	Name:    "emulator",
	Summary: "the built-in exe.dev emulator",
	About:   "the exe.dev emulator, in-process: no account, no network",
	// The emulator runs in the process that opened it.
	EndsWithProgram:  "the emulator runs inside moat and its VM ends when moat exits",
	KeepInstead:      "run 'moat dev exedev' and use --sandbox exedev",
	TakesNoIsolation: true,
	NoIsolationVar:   NoIsolationVar,
	Open: func(ctx context.Context, spec string, env sandbox.Env) (*sandbox.Opened, error) {
		var opts []Option
		if env.NoIsolation {
			opts = append(opts, WithNoIsolation())
		}
		srv, err := Start(opts...)
		if errors.Is(err, ErrNoContainment) {
			return nil, fmt.Errorf("%w; or pass --no-isolation (%s=1) to run the agent's commands unisolated, as plain processes on this computer", err, NoIsolationVar)
		}
		if err != nil {
			return nil, fmt.Errorf("start the exe.dev emulator: %w", err)
		}
		if why := srv.Containment(); why != nil && env.Logger != nil {
			env.Logger.Warn(NoIsolationWarning(why))
		}
		if env.Notices != nil {
			fmt.Fprintf(env.Notices, "moat: exe.dev emulator on %s (no account, no network)\n", srv.LobbyAddr())
		}
		return &sandbox.Opened{
			Provider:    &provider{Provider: exedev.New(srv.Config()), srv: srv},
			Close:       func() { srv.Close() },
			Files:       srv.Dir(),
			FilesReason: "the exe.dev emulator's files",
		}, nil
	},
	Leftovers: func(spec string, env sandbox.Env) sandbox.LeftoverFinder {
		return Leftovers{Logger: env.Logger}
	},
	Doctor: doctor,
}

// NoIsolationVar, set to 1, lets the emulator kind run its VMs' commands
// uncontained where it cannot contain them, like --no-isolation.
const NoIsolationVar = "MOAT_EMULATOR_NO_ISOLATION"

// NoIsolationWarning is the warning of an emulator that runs its VMs'
// commands uncontained: why is Server.Containment.
func NoIsolationWarning(why error) string {
	return "NOT ISOLATED: " + why.Error() + ". With --no-isolation (or " + NoIsolationVar + "=1) the emulator runs VM commands, the agent's too, as plain processes on this computer, as you: they can read and change all your files, see and signal your processes and read their environment"
}

// doctor says, for the emulator, that the SSH checks do not apply, and
// whether it contains its VMs here (or refuses to run unless told
// --no-isolation). For another kind it has nothing to say.
func doctor(ctx context.Context, spec string, env sandbox.Env) []sandbox.Check {
	if spec != "emulator" {
		return nil
	}
	var c sandbox.Checks
	for _, name := range []string{"ssh key", "ssh agent", "known_hosts", "exe.dev"} {
		c.Add(sandbox.CheckSkip, name, "the emulator brings its own key and runs on this machine")
	}
	err := CheckContainment()
	switch {
	case err == nil:
		c.Add(sandbox.CheckOK, "emulator", "VMs contained: own PID, IPC, UTS and mount namespaces, own home and /tmp, system directories read-only; the network is this computer's")
	case env.NoIsolation:
		c.Add(sandbox.CheckWarn, "emulator", err.Error(), "note: "+NoIsolationVar+" is set: VM commands run as plain processes on this computer, as you")
	default:
		c.Add(sandbox.CheckFail, "emulator", err.Error(), "fix: install what is missing; or pass --no-isolation to moat run and moat exec ("+NoIsolationVar+"=1) to run VM commands unisolated, as plain processes on this computer")
	}
	return c
}

// provider is an exe.dev provider talking to the in-process emulator srv,
// whose handles know where their files are on this computer.
type provider struct {
	*exedev.Provider
	srv *Server
}

func (p *provider) Create(ctx context.Context, opts sandbox.CreateOptions) (sandbox.Handle, error) {
	h, err := p.Provider.Create(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &handle{Handle: h.(*exedev.Handle), srv: p.srv}, nil
}

// handle is a VM of the in-process emulator: an exe.dev handle (with its
// capabilities) that also knows its files (sandbox.OnHost).
type handle struct {
	*exedev.Handle
	srv *Server
}

var (
	_ sandbox.OnHost    = (*handle)(nil)
	_ sandbox.Keeper    = (*handle)(nil)
	_ sandbox.Reachable = (*handle)(nil)
	_ sandbox.Named     = (*handle)(nil)
)

// HostPaths returns the VM's WorkDir on this computer and the emulator's
// directory, which holds every VM.
func (h *handle) HostPaths() (work string, all []string, ok bool) {
	work, ok = h.srv.HostPath(h.VM().Name, h.WorkDir())
	return work, []string{h.srv.Dir()}, ok
}
