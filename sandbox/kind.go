package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/moatdev/moat/internal/prose"
)

// Kind describes one kind of sandbox to whoever lets a person choose it
// (the moat CLI's --sandbox, its completions, `moat init`, config
// validation and `moat doctor`), the way restic's backends describe
// themselves: each sandbox package declares its Kind once, and one
// registry lists them all. Nothing else needs to name the kind.
type Kind struct {
	// Name is the kind's name: the whole --sandbox value ("local"), or,
	// for a kind whose specs are URLs (URL), their scheme ("ssh").
	Name string

	// URL says the kind's specs are Name + "://" and more: "ssh://host".
	URL bool

	// Spec shows how a person writes a spec of the kind, for help texts:
	// "local", "ssh://[user@]host[:port]".
	Spec string

	// Summary is one short line for shell completion: "exe.dev microVM".
	Summary string

	// About says in a sentence or two what the sandbox is, for help texts
	// and `moat init`: "a fresh exe.dev VM".
	About string

	// Parse checks a spec of the kind beyond its name (an ssh:// URL's
	// user, host and port); nil accepts every spec Match accepts. Its
	// error says what is wrong and how a spec is written.
	Parse func(spec string) error

	// ActsOnHost, when not "", says what naming a sandbox of this kind
	// in a repository's config file does on the user's behalf ("sends
	// your repository to this SSH host, signing in with your SSH keys"):
	// such a setting takes effect only once the user trusts the file.
	ActsOnHost string

	// EndsWithProgram, when not "", says why the kind's sandboxes end
	// when the program that opened them exits (they live in an in-process
	// emulator): "the emulator runs inside moat and its VM ends when moat
	// exits". A kept sandbox is then no recovery, and its work must be
	// brought out before the program exits. KeepInstead says what to use
	// to keep one.
	EndsWithProgram, KeepInstead string

	// TakesNoIsolation says the kind can run its sandboxes uncontained
	// where this computer cannot contain them, when the person asks
	// (Env.NoIsolation: --no-isolation); NoIsolationVar names the
	// environment variable that asks too ("MOAT_EMULATOR_NO_ISOLATION").
	TakesNoIsolation bool
	NoIsolationVar   string

	// TakesNetwork says the kind's sandboxes take a network mode
	// (Env.Network: --network, network = in .moat/config.toml).
	TakesNetwork bool

	// Open returns the provider for spec, and starts what it needs (an
	// in-process emulator, say). Notices of what it started go to
	// env.Notices. A containment the host cannot give fails here, before
	// anything runs.
	Open func(ctx context.Context, spec string, env Env) (*Opened, error)

	// Leftovers returns the finder of the kind's leftovers (see
	// LeftoverFinder) at spec: for a URL kind, the host spec names; for
	// another kind spec is its Name. nil when the kind's leftovers are
	// listed some other way (exe.dev VMs: the lobby lists them) or not
	// at all.
	Leftovers func(spec string, env Env) LeftoverFinder

	// Doctor checks what the kind's sandboxes need on this computer (SSH
	// keys, a lobby that answers, bubblewrap), one Check per line of
	// `moat doctor`. spec is the sandbox in use, which may be of another
	// kind, or "" when it is not known (the config that names it is
	// broken). For another kind's spec, a kind says what it still has to
	// say about this computer as CheckInfo, or that its checks do not
	// apply (CheckSkip), or nothing; `moat doctor` runs the kind in use
	// first and shows each check's name once.
	Doctor func(ctx context.Context, spec string, env Env) []Check
}

// Match reports whether spec is one of k's.
func (k Kind) Match(spec string) bool {
	if k.URL {
		return strings.HasPrefix(spec, k.Name+"://")
	}
	return spec == k.Name
}

// Env is what a kind gets from the program that opens it.
type Env struct {
	// Network is the network mode for a kind that TakesNetwork; "" is
	// its default.
	Network string

	// NoIsolation, for a kind that TakesNoIsolation, lets it run its
	// sandboxes uncontained where it cannot contain them, with a
	// warning.
	NoIsolation bool

	// Logger receives the provider's logs; its warnings are for the
	// person (a local sandbox that cannot isolate, say). nil discards
	// them.
	Logger *slog.Logger

	// Notices receives what Open started, one line each ("moat: exe.dev
	// emulator on 127.0.0.1:2222"); nil discards them.
	Notices io.Writer

	// Settings holds each kind's own settings, by kind name, as the
	// kind's own configuration type (the [exedev] table of
	// .moat/config.toml as an exedev.Config, say). A kind without an
	// entry uses its defaults.
	Settings map[string]any

	// SettingsFile names where Settings came from, for messages:
	// ".moat/config.toml".
	SettingsFile string

	// Offline asks Doctor to skip the checks that need the network.
	Offline bool

	// Timeout bounds each of Doctor's checks that waits for a server; 0
	// means the kind's default.
	Timeout time.Duration
}

// Opened is a kind's provider, with what came with it.
type Opened struct {
	Provider Provider

	// Kind and Spec are what was opened; Registry.Open sets them.
	Kind Kind
	Spec string

	// Close releases what Open started, such as an in-process emulator;
	// nil when there is nothing to release. The provider's sandboxes
	// must be closed first.
	Close func()

	// Files, when not "", is a host directory Open made that outlives a
	// program that quits at once without Close, with what it is
	// (FilesReason), so that it can be reported for removal.
	Files, FilesReason string
}

// CheckStatus is the outcome of a Check.
type CheckStatus string

// The statuses of a Check. Only CheckFail fails `moat doctor`.
const (
	CheckOK   CheckStatus = "ok"
	CheckInfo CheckStatus = "info"
	CheckWarn CheckStatus = "warn"
	CheckFail CheckStatus = "FAIL"
	CheckSkip CheckStatus = "skip"
)

// Check is one line of `moat doctor`.
type Check struct {
	Status CheckStatus
	Name   string   // what was checked: "ssh key"
	Detail string   // what was found
	More   []string // further lines: "why: …", "fix: …"
}

// Registry is the list of sandbox kinds a program offers, in the order it
// shows them. The zero value is empty and ready to use. It is not safe
// for concurrent Register calls; register at start-up.
type Registry struct {
	kinds []Kind
}

// NewRegistry returns a registry holding kinds, in that order. It panics
// like Register.
func NewRegistry(kinds ...Kind) *Registry {
	r := &Registry{}
	for _, k := range kinds {
		r.Register(k)
	}
	return r
}

// Register adds k at the end. It panics when k has no name, no Open, or
// the name of a kind already registered: registration is programming,
// not input.
func (r *Registry) Register(k Kind) {
	switch {
	case k.Name == "" || strings.ContainsAny(k.Name, " \t\n\"=:/"):
		panic(fmt.Sprintf("sandbox: Register of a kind named %q", k.Name))
	case k.Open == nil:
		panic("sandbox: Register of kind " + k.Name + " without Open")
	}
	for _, o := range r.kinds {
		if o.Name == k.Name {
			panic("sandbox: kind " + k.Name + " registered twice")
		}
	}
	if k.Spec == "" {
		k.Spec = k.Name
		if k.URL {
			k.Spec += "://…"
		}
	}
	r.kinds = append(r.kinds, k)
}

// Kinds returns the registered kinds, in order.
func (r *Registry) Kinds() []Kind { return append([]Kind(nil), r.kinds...) }

// Lookup returns the kind spec is one of.
func (r *Registry) Lookup(spec string) (Kind, bool) {
	for _, k := range r.kinds {
		if k.Match(spec) {
			return k, true
		}
	}
	return Kind{}, false
}

// Specs returns how each kind's specs are written, in order: "exedev",
// "ssh://[user@]host[:port]".
func (r *Registry) Specs() []string {
	specs := make([]string, len(r.kinds))
	for i, k := range r.kinds {
		specs[i] = k.Spec
	}
	return specs
}

// Check returns nil when spec is a valid spec of a registered kind; else
// an error saying what is wrong, or listing how specs are written: `want
// "exedev", "local" or "ssh://[user@]host[:port]"`.
func (r *Registry) Check(spec string) error {
	k, ok := r.Lookup(spec)
	if !ok {
		quoted := make([]string, len(r.kinds))
		for i, k := range r.kinds {
			quoted[i] = fmt.Sprintf("%q", k.Spec)
		}
		return errors.New("want " + prose.OneOf(quoted))
	}
	if k.Parse != nil {
		return k.Parse(spec)
	}
	return nil
}

// Open opens spec's kind (see Kind.Open) after checking spec.
func (r *Registry) Open(ctx context.Context, spec string, env Env) (*Opened, error) {
	if err := r.Check(spec); err != nil {
		return nil, fmt.Errorf("sandbox %q: %w", spec, err)
	}
	k, _ := r.Lookup(spec)
	o, err := k.Open(ctx, spec, env)
	if err != nil {
		return nil, err
	}
	if o.Close == nil {
		o.Close = func() {}
	}
	o.Kind, o.Spec = k, spec
	return o, nil
}

// Checks collects a Doctor's checks.
type Checks []Check

// Add appends a check; empty lines of more are dropped.
func (c *Checks) Add(status CheckStatus, name, detail string, more ...string) {
	var kept []string
	for _, m := range more {
		if m != "" {
			kept = append(kept, m)
		}
	}
	*c = append(*c, Check{Status: status, Name: name, Detail: detail, More: kept})
}
