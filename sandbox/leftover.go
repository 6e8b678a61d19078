package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/moatdev/moat/internal/procstat"
)

// Labels that moat puts in CreateOptions.Labels, so that a leftover says
// which run of which repository made it.
const (
	LabelRepo = "repo" // the host repository's top-level directory
	LabelRun  = "run"  // the run's id
)

// MarkerVar is the environment variable that marks every process a
// sandbox's commands start (and the processes those start), with a value
// unique to the sandbox, so that the processes that outlive their command
// (nohup, setsid, daemons) can be found and killed: by Close, and by
// garbage collection once the process that made the sandbox is gone.
const MarkerVar = "MOAT_SANDBOX_ID"

// Owner names the process that made a sandbox: a sandbox whose owner is
// gone is a leftover, one whose owner runs is in use.
type Owner struct {
	Host  string `json:"host"`            // os.Hostname of the owner's machine
	PID   int    `json:"pid"`             // the owner's process ID there
	Start uint64 `json:"start,omitempty"` // its start time (procstat), 0 when unknown
}

// Self is the running process as an Owner.
func Self() Owner {
	o := Owner{PID: os.Getpid(), Host: hostname()}
	if st, err := procstat.Read(o.PID); err == nil {
		o.Start = st.Start
	}
	return o
}

var hostname = sync.OnceValue(func() string { h, _ := os.Hostname(); return h })

// Gone reports whether the owner has certainly ended: it ran on this
// machine and no process with its PID and start time runs any more. An
// owner on another machine, or one this machine cannot check, is not
// known to be gone.
func (o Owner) Gone() bool {
	if o.Host != hostname() || o.PID <= 0 {
		return false
	}
	st, err := procstat.Read(o.PID)
	if err != nil {
		if _, perr := os.Stat("/proc/self/stat"); perr != nil {
			return false // no /proc: cannot tell
		}
		return true
	}
	return !st.Live() || (o.Start != 0 && st.Start != o.Start)
}

// Record is what a provider stores with a sandbox, where the sandbox's
// own commands do not see it when the provider can manage that, so that
// the sandbox can be found, and told apart from one in use, after the
// process that made it is gone.
type Record struct {
	Created time.Time         `json:"created"`
	Owner   Owner             `json:"owner"`
	Labels  map[string]string `json:"labels,omitempty"` // CreateOptions.Labels
	// WorkDir is the sandbox's WorkDir, when it is not where the kind
	// always puts it.
	WorkDir string `json:"workdir,omitempty"`
	// Kept is set when moat left the sandbox on purpose (Keeper): garbage
	// collection spares it.
	Kept bool `json:"kept,omitempty"`
}

// Keeper is implemented by a Handle that can mark its sandbox as kept on
// purpose (moat exec --keep, or a run whose work could not be brought
// out), so that garbage collection spares it once moat has exited.
type Keeper interface {
	MarkKept(ctx context.Context) error
}

// NewRecord is the record of a sandbox made now by this process.
func NewRecord(labels map[string]string) Record {
	return Record{Created: time.Now().UTC().Truncate(time.Second), Owner: Self(), Labels: labels}
}

// Marshal returns the record as JSON.
func (r Record) Marshal() []byte {
	b, _ := json.Marshal(r)
	return append(b, '\n')
}

// ParseRecord reads a record written by Marshal.
func ParseRecord(b []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return Record{}, fmt.Errorf("sandbox record: %w", err)
	}
	return r, nil
}

// Leftover is a sandbox that a LeftoverFinder found: most likely one whose
// maker was killed before it could close it, and which may hold the only
// copy of an agent's work.
type Leftover struct {
	// Kind is the sandbox kind: "local", "sshhost", "emulator", "exedev".
	Kind string
	// Name identifies the leftover within its kind.
	Name string
	// Where says where it is, for people: a directory, host:directory, a
	// VM.
	Where string
	// Record is what its maker stored; zero fields when it stored nothing.
	Record
	// InUse is set when its maker still runs: it is not a leftover, and
	// garbage collection leaves it alone.
	InUse bool
	// Processes counts its processes still running; -1 when unknown.
	Processes int
	// Trusted is set when the record lies out of the reach of the
	// sandbox's commands (a local sandbox's): only then do its labels
	// say for sure where the sandbox came from, and an agent cannot
	// point them at another repository.
	Trusted bool
}

// Repo is the host repository the leftover's run came from, "" when
// unknown.
func (l Leftover) Repo() string { return l.Labels[LabelRepo] }

// LeftoverFinder is implemented by a Provider (or a tool such as the
// exe.dev emulator) that can find the sandboxes of its kind that outlived
// the process that made them, reopen them to bring work home, and remove
// them. The CLI's list of finders is the one place a new kind (containers,
// say) plugs in.
type LeftoverFinder interface {
	// Kind is the Leftover.Kind of what it finds.
	Kind() string
	// Leftovers lists the sandboxes of this kind it can reach, those in
	// use included (InUse set), oldest first.
	Leftovers(ctx context.Context) ([]Leftover, error)
	// OpenLeftover returns a handle on l, with l's repository at its
	// WorkDir, for looking at and bringing home its work. Closing the
	// handle releases what OpenLeftover took and leaves the sandbox as it
	// is.
	OpenLeftover(ctx context.Context, l Leftover) (Handle, error)
	// RemoveLeftover kills l's processes and removes it. A leftover
	// already gone is not an error.
	RemoveLeftover(ctx context.Context, l Leftover) error
}

// ProcessCounter is implemented by a LeftoverFinder whose Leftovers leaves
// Leftover.Processes unknown (-1), because counting costs much more than
// listing (a pass over every process of the machine): CountProcesses
// fills the counts in.
type ProcessCounter interface {
	CountProcesses(ctx context.Context, ls []Leftover)
}
