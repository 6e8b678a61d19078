package moat

import (
	"slices"
	"sync"

	"github.com/moatdev/moat/sandbox"
)

// Footprint is what a run has made and not yet removed, kept up to date
// while the run goes: what a process that has to quit at once (a second
// Ctrl-C, a supervisor's deadline) leaves behind, each thing with how to
// recover the work in it or remove it. Give one in RunOptions.Footprint
// and read it from any goroutine. Its zero value is ready; a nil
// *Footprint records nothing.
//
// When Run returns, what is left in it is what the run kept on purpose
// (RunResult.Kept) and the run's log.
type Footprint struct {
	mu      sync.Mutex
	items   []footItem
	sandbox sandbox.Handle
	redact  func(string) string
	runID   string
}

// RunID is the run's id, "" until the run has one.
func (f *Footprint) RunID() string {
	if f == nil {
		return ""
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.runID
}

func (f *Footprint) setRunID(id string) {
	if f == nil {
		return
	}
	f.mu.Lock()
	f.runID = id
	f.mu.Unlock()
}

type footItem struct {
	key  string
	kept Kept
}

// Leftovers lists what the run would leave behind if the process ended
// now, oldest first, each with what to do about it in Fix. An entry with
// What "sandbox" is Sandbox().
func (f *Footprint) Leftovers() []Kept {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Kept, 0, len(f.items))
	for _, it := range f.items {
		k := it.kept
		if f.redact != nil {
			k.Path, k.Reason, k.Fix = f.redact(k.Path), f.redact(k.Reason), f.redact(k.Fix)
		}
		out = append(out, k)
	}
	return out
}

// Sandbox is the run's sandbox while it exists: nil before it is created
// and once it is closed.
func (f *Footprint) Sandbox() sandbox.Handle {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sandbox
}

// put records k under key, replacing what key held.
func (f *Footprint) put(key string, k Kept) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if i := slices.IndexFunc(f.items, func(it footItem) bool { return it.key == key }); i >= 0 {
		f.items[i].kept = k
		return
	}
	f.items = append(f.items, footItem{key, k})
}

// drop forgets key: it was removed.
func (f *Footprint) drop(key string) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.items = slices.DeleteFunc(f.items, func(it footItem) bool { return it.key == key })
	if key == footSandbox {
		f.sandbox = nil
	}
}

// putSandbox records the run's sandbox, h, as k.
func (f *Footprint) putSandbox(h sandbox.Handle, k Kept) {
	if f == nil {
		return
	}
	f.put(footSandbox, k)
	f.mu.Lock()
	f.sandbox = h
	f.mu.Unlock()
}

func (f *Footprint) setRedact(redact func(string) string) {
	if f == nil {
		return
	}
	f.mu.Lock()
	f.redact = redact
	f.mu.Unlock()
}

// The keys of a run's footprint.
const (
	footTemp     = "temp"
	footRefs     = "refs"
	footHookTree = "hook-worktree"
	footSandbox  = "sandbox"
	footMerge    = "merge"
)
