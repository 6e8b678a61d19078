package sandbox

// Capabilities: what a sandbox can do beyond the contract of Provider and
// Handle. Each is a small interface a Handle (or a Provider, or an error)
// implements when it can; callers ask with a type assertion on the named
// interface, never on a provider's own types, and do without it when it
// is missing. sandboxtest checks each one a provider implements.

// Keeper (leftover.go): a Handle that can be marked kept on purpose, so
// that garbage collection spares it. LeftoverFinder (leftover.go): a
// Provider that finds, reopens and removes the sandboxes of its kind that
// outlived the process that made them.

// Holder is implemented by a Provider that can keep its connection open
// across several uses (a look for leftovers, then a run), so that they do
// not each pay for a new one.
type Holder interface {
	// Hold keeps the connection open until release is called.
	Hold() (release func(), err error)
}

// Named is implemented by a Handle whose WorkDir alone does not say which
// sandbox it is (every exe.dev VM has the same one), so that what a
// person is told about a kept sandbox names it.
type Named interface {
	// SandboxName is the sandbox's own name, such as an exe.dev VM's:
	// stable for the handle's life, never empty.
	SandboxName() string
}

// Reachable is implemented by a Handle a person can reach by hand: how to
// get into a kept sandbox and how to remove it, as commands to type.
type Reachable interface {
	// Access says how to reach the sandbox and how to remove it.
	Access() Access
}

// Access is how a person reaches a sandbox and removes it. Every field is
// a command line for a POSIX shell, its arguments quoted.
type Access struct {
	// SSH is an ssh command line that runs the command appended to it in
	// the sandbox; "" when the sandbox is on this computer.
	SSH string
	// Reach is what to type to get to the sandbox's WorkDir.
	Reach string
	// Remove is what to type to remove the sandbox.
	Remove string
}

// OnHost is implemented by a Handle whose files are on this computer (a
// local sandbox, a VM of an in-process emulator), so that the work in a
// kept sandbox can be fetched from its files directly.
type OnHost interface {
	// HostPaths returns the host path of WorkDir, and the host paths
	// whose removal removes the whole sandbox, its directory first; ok
	// is false when they are not known (any more).
	HostPaths() (work string, all []string, ok bool)
}

// Permanent is implemented by an error that trying again cannot change:
// a host key or a login refused, a quota reached. Callers that retry a
// failed step (a sync over a dropped connection, say) stop at once on
// one. See IsPermanent.
type Permanent interface {
	error
	// Permanent reports whether the error is permanent.
	Permanent() bool
}

// IsPermanent reports whether err, or an error in the tree it wraps, is
// a Permanent error that says it is.
func IsPermanent(err error) bool {
	if p, ok := err.(Permanent); ok && p.Permanent() {
		return true
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return IsPermanent(u.Unwrap())
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if IsPermanent(e) {
				return true
			}
		}
	}
	return false
}
