package exedevtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/moatdev/moat/internal/procmark"
	"github.com/moatdev/moat/sandbox"
	"github.com/moatdev/moat/sandbox/local"
)

// An emulator killed before Close (kill -9 of the moat that ran it
// in-process) leaves its directory, and in it every VM's directory with
// the only copy of what ran there, and the VMs' processes running. Two
// files make them findable (Leftovers):
//
//	<dir>/owner.json       the emulator process (a sandbox.Record)
//	<dir>/vms/<vm>/vm.json the VM: name, creation time, and the marks of
//	                       its processes (vmRecord)
const (
	ownerFile = "owner.json"
	vmFile    = "vm.json"
	dirPrefix = "exedevtest-"
)

// vmRecord is a VM's vm.json.
type vmRecord struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	// Marker is the value of markerVar that every process of the VM
	// carries in plain mode.
	Marker string `json:"marker,omitempty"`
}

// writeOwner records the emulator process in the emulator's directory.
func (s *Server) writeOwner() error {
	return os.WriteFile(filepath.Join(s.dir, ownerFile), sandbox.NewRecord(nil).Marshal(), 0o600)
}

// writeRecord (re)writes v's vm.json: after it is created, and when a
// restart gives it a new machine.
func (v *vm) writeRecord() error {
	v.mu.Lock()
	rec := vmRecord{Name: v.name, Created: v.created.UTC()}
	v.mu.Unlock()
	if v.s.sandbox == nil {
		rec.Marker = v.marker
	}
	b, _ := json.Marshal(rec)
	return os.WriteFile(filepath.Join(v.dir, vmFile), b, 0o600)
}

// LabelsFile is where, in a VM's home, the exedev provider writes the
// labels of the sandbox (sandbox.CreateOptions.Labels) as JSON, so that a
// leftover VM says which run made it.
const LabelsFile = ".moat/labels.json"

// Leftovers finds what exe.dev emulators left on this machine: the VMs
// of emulators that were not closed. It is a sandbox.LeftoverFinder of
// kind "emulator". The VMs of an emulator that still runs are not
// leftovers: moat reaches them as exe.dev VMs, through its lobby.
type Leftovers struct {
	// Root is where emulators make their directories; "" means
	// os.TempDir(), where Start makes them.
	Root string
	// Logger receives the local sandbox's warnings when a VM is opened;
	// nil discards them.
	Logger *slog.Logger
}

var _ sandbox.LeftoverFinder = Leftovers{}

// Kind returns "emulator".
func (Leftovers) Kind() string { return "emulator" }

func (f Leftovers) root() string {
	root := f.Root
	if root == "" {
		root = os.TempDir()
	}
	if abs, err := filepath.Abs(root); err == nil {
		return abs
	}
	return root
}

// Leftovers implements sandbox.LeftoverFinder. It reads directories and
// small files only.
func (f Leftovers) Leftovers(ctx context.Context) ([]sandbox.Leftover, error) {
	owners, err := filepath.Glob(filepath.Join(f.root(), dirPrefix+"*", ownerFile))
	if err != nil {
		return nil, err
	}
	var out []sandbox.Leftover
	for _, of := range owners {
		dir := filepath.Dir(of)
		b, err := os.ReadFile(of)
		if err != nil {
			continue
		}
		owner, err := sandbox.ParseRecord(b)
		if err != nil {
			continue
		}
		if !owner.Owner.Gone() {
			continue // a running emulator's VMs are exe.dev VMs in its lobby
		}
		vms, _ := os.ReadDir(filepath.Join(dir, "vms"))
		for _, e := range vms {
			vdir := filepath.Join(dir, "vms", e.Name())
			rec, err := readVMRecord(vdir)
			if err != nil {
				continue
			}
			l := sandbox.Leftover{Kind: "emulator", Name: rec.Name, Where: vdir, Processes: -1}
			l.Created, l.Owner = rec.Created, owner.Owner
			l.Labels = readLabels(filepath.Join(vdir, "home", LabelsFile))
			out = append(out, l)
		}
	}
	slices.SortStableFunc(out, func(a, b sandbox.Leftover) int { return a.Created.Compare(b.Created) })
	return out, nil
}

var _ sandbox.ProcessCounter = Leftovers{}

// CountProcesses implements sandbox.ProcessCounter: one pass over /proc
// for each kind of mark, whatever the number of VMs.
func (f Leftovers) CountProcesses(ctx context.Context, ls []sandbox.Leftover) {
	if len(ls) == 0 || !procmark.Supported() {
		return
	}
	byMarker := procmark.CountEnv(markerVar)
	for i := range ls {
		rec, err := readVMRecord(ls[i].Where)
		if ls[i].Kind != "emulator" || err != nil {
			continue
		}
		ls[i].Processes = 0
		if rec.Marker != "" {
			ls[i].Processes += byMarker[rec.Marker]
		}
	}
}

func readVMRecord(vdir string) (vmRecord, error) {
	var rec vmRecord
	b, err := os.ReadFile(filepath.Join(vdir, vmFile))
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil || rec.Name == "" {
		return rec, fmt.Errorf("emulator VM record %s: malformed", vdir)
	}
	return rec, nil
}

// readLabels reads a labels file a VM's own commands could have written:
// bounded, and only string values.
func readLabels(path string) map[string]string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	b := make([]byte, 8<<10)
	n, _ := f.Read(b)
	var labels map[string]string
	if json.Unmarshal(b[:n], &labels) != nil {
		return nil
	}
	return labels
}

// vmProcesses matches the processes of the VM rec describes: those of an
// uncontained VM carry its marker. A contained VM's processes live in its
// PID namespace and end with it, when the emulator does; its mount
// namespace's id is no mark, since Linux gives a freed namespace's id to
// the next one made (which may be anyone's).
func vmProcesses(rec vmRecord) procmark.Match {
	if rec.Marker == "" {
		return procmark.Any()
	}
	return procmark.Env(markerVar, rec.Marker)
}

// vmDir checks that l is a VM directory of an emulator in the root.
func (f Leftovers) vmDir(l sandbox.Leftover) (string, error) {
	root := f.root()
	dir := filepath.Clean(l.Where)
	vms := filepath.Dir(dir)
	if l.Kind != "emulator" || filepath.Base(vms) != "vms" || filepath.Dir(filepath.Dir(vms)) != root ||
		!strings.HasPrefix(filepath.Base(filepath.Dir(vms)), dirPrefix) {
		return "", fmt.Errorf("emulator: %s is not an emulator VM directory", l.Where)
	}
	rec, err := readVMRecord(dir)
	if err != nil || rec.Name != l.Name {
		return "", fmt.Errorf("emulator: %s is not the directory of VM %s", l.Where, l.Name)
	}
	return dir, nil
}

// OpenLeftover implements sandbox.LeftoverFinder: the VM's directory as
// a local sandbox (inside bubblewrap when it works, with no network),
// its WorkDir the VM's ~/workspace.
func (f Leftovers) OpenLeftover(ctx context.Context, l sandbox.Leftover) (sandbox.Handle, error) {
	dir, err := f.vmDir(l)
	if err != nil {
		return nil, err
	}
	log := f.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return local.New(local.Config{Logger: log}).OpenDir(ctx, dir, filepath.Join(dir, "home", "workspace"))
}

// RemoveLeftover implements sandbox.LeftoverFinder: it kills the VM's
// processes and removes its directory, and the emulator's directory once
// it has no VM left.
func (f Leftovers) RemoveLeftover(ctx context.Context, l sandbox.Leftover) error {
	dir, err := f.vmDir(l)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	if rec, err := readVMRecord(dir); err == nil {
		procmark.Kill(vmProcesses(rec))
	}
	if err := removeAll(dir); err != nil {
		return fmt.Errorf("emulator: removing %s: %w", dir, err)
	}
	emu := filepath.Dir(filepath.Dir(dir))
	if rest, _ := os.ReadDir(filepath.Join(emu, "vms")); len(rest) == 0 {
		if err := removeAll(emu); err != nil {
			return fmt.Errorf("emulator: removing %s: %w", emu, err)
		}
	}
	return nil
}
