package moat_test

// Load tests: many runs in one process leave nothing behind (goroutines,
// file descriptors, heap, child processes, VMs, temp dirs, worktrees), and
// many concurrent runs in one repository all land their commits while the
// exe.dev provider keeps under exe.dev's connection rate.
//
// Knobs. The defaults take about 10 s (sequential) and 16 s (concurrent,
// bounded by the dial rate: 17 connections at burst 3 then one per second)
// under -race on 2 cores:
//
//	MOAT_LOAD_RUNS=200       runs in TestLoadSequential (default 20)
//	MOAT_LOAD_CONCURRENT=32  concurrent runs in TestLoadConcurrent (default 16)
//
// For example:
//
//	MOAT_LOAD_RUNS=200 go test -race -count=1 -run TestLoadSequential -v .

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/moatdev/moat"
	"github.com/moatdev/moat/agent/command"
	"github.com/moatdev/moat/internal/procstat"
	"github.com/moatdev/moat/sandbox/exedev"
	"github.com/moatdev/moat/sandbox/exedev/exedevtest"
)

// loadAgent writes its prompt (a run id read from stdin) to load.txt,
// commits it and exits: an agent that costs nothing, so the load is moat's
// own. One file for every run keeps the checkout the same size; only the
// history grows.
var loadAgent = command.New(command.Config{
	Command: `id=$(cat) && echo "$id" > load.txt && git add load.txt && git commit -q -m "load $id"`,
})

// The heap may grow over n runs by at most loadHeapBase + n*loadHeapPerRun
// beyond what the emulator's own logs grew (loadEmulatorBytes), and heap in
// use (whole pages) by loadHeapPages more. A heap profile of 200 runs
// (go test -memprofilerate=1) showed no growth in moat's packages at all:
// ~1.4 KiB per run held by the emulator's transcript and connection log, of
// which loadEmulatorBytes sees ~1 KiB, and the test's own list of commits.
// loadHeapPerRun covers that unseen rest twice over; loadHeapBase covers
// runtime noise. So a leak of the heap alone fails above about 14 KiB per
// run at the default 20 runs and above about 2 KiB per run at 200 runs;
// one that holds a goroutine, a descriptor or a process fails at any size.
const (
	loadHeapBase   = 256 << 10
	loadHeapPerRun = 1 << 10
	loadHeapPages  = 256 << 10
)

// loadEnvInt reads a positive integer knob.
func loadEnvInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

// loadPrivateTemp points TMPDIR at a fresh directory for the test, so the
// temporary files moat makes (moat-bundle-*, moat-sync-*, moat-changes-*)
// can be counted exactly, whatever else runs on the machine.
func loadPrivateTemp(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	if os.TempDir() != dir {
		t.Fatalf("os.TempDir() = %s after setting TMPDIR=%s", os.TempDir(), dir)
	}
	return dir
}

// loadFigures is what a run could leak, measured at one moment.
type loadFigures struct {
	Goroutines   int
	FDs          int
	HeapInuse    uint64
	HeapAlloc    uint64
	Descendants  []string // "pid state comm" of every live descendant process
	Zombies      int
	VMs          []string // alive on the emulator
	TempEntries  []string // names in the private TMPDIR
	Worktrees    []string // entries of <repo>/.moat/worktrees
	Patches      []string // entries of <repo>/.moat/patches
	GitWorktrees int      // worktrees `git worktree list` knows, the main one included
	MoatBranches string   // `git branch --list moat/*`
	// EmulatorBytes estimates what the emulator keeps on purpose (its
	// connection log and lobby transcript); it grows with every run and is
	// taken off the heap figures before they are compared.
	EmulatorBytes uint64
}

func (f loadFigures) String() string {
	return fmt.Sprintf("goroutines %d, fds %d, heap in use %.2f MiB, heap alloc %.2f MiB (emulator's logs %.2f MiB), descendants %d (zombies %d), VMs %d, temp entries %d, .moat/worktrees %d, .moat/patches %d, git worktrees %d",
		f.Goroutines, f.FDs, float64(f.HeapInuse)/(1<<20), float64(f.HeapAlloc)/(1<<20), float64(f.EmulatorBytes)/(1<<20), len(f.Descendants), f.Zombies,
		len(f.VMs), len(f.TempEntries), len(f.Worktrees), len(f.Patches), f.GitWorktrees)
}

// loadMeasure takes the figures now.
func loadMeasure(t *testing.T, srv *exedevtest.Server, repo, tmp string) loadFigures {
	t.Helper()
	var f loadFigures
	f.Goroutines = runtime.NumGoroutine()
	f.FDs = len(loadDirNames(t, "/proc/self/fd"))
	runtime.GC()
	runtime.GC() // the second collects what the first's finalizers let go
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	f.HeapInuse, f.HeapAlloc = ms.HeapInuse, ms.HeapAlloc
	f.Descendants, f.Zombies = loadDescendants(t)
	f.VMs = srv.VMs()
	f.TempEntries = loadDirNames(t, tmp)
	f.Worktrees = loadDirNames(t, filepath.Join(repo, ".moat", "worktrees"))
	f.Patches = loadDirNames(t, filepath.Join(repo, ".moat", "patches"))
	f.GitWorktrees = strings.Count(git(t, repo, "worktree", "list", "--porcelain"), "worktree ")
	f.MoatBranches = git(t, repo, "branch", "--list", "moat/*")
	f.EmulatorBytes = loadEmulatorBytes(srv)
	return f
}

// loadEmulatorBytes estimates the heap the emulator's connection log and
// lobby transcript hold: struct sizes plus string and slice contents.
func loadEmulatorBytes(srv *exedevtest.Server) uint64 {
	n := uint64(len(srv.Connections())) * uint64(unsafe.Sizeof(exedevtest.Connection{}))
	for _, c := range srv.Transcript() {
		n += uint64(unsafe.Sizeof(c)) + uint64(len(c.User)+len(c.Command)+len(c.Stdout)+len(c.Stderr))
		for _, a := range c.Args {
			n += uint64(unsafe.Sizeof(a)) + uint64(len(a))
		}
	}
	return n
}

// loadDirNames lists a directory; a missing one is empty.
func loadDirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("list %s: %v", dir, err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// loadDescendants lists every live process below this one (children,
// grandchildren, …) from /proc, and counts the zombies among them: a child
// moat started and never waited for stays a zombie until the test ends.
func loadDescendants(t *testing.T) (procs []string, zombies int) {
	t.Helper()
	all, err := procstat.All()
	if err != nil {
		t.Fatal(err)
	}
	below := map[int]bool{os.Getpid(): true}
	for changed := true; changed; {
		changed = false
		for _, p := range all {
			if below[p.PPID] && !below[p.PID] {
				below[p.PID] = true
				changed = true
			}
		}
	}
	for _, p := range all {
		if p.PID != os.Getpid() && below[p.PID] {
			procs = append(procs, fmt.Sprintf("%d %s %s", p.PID, p.State, p.Comm))
			if !p.Live() {
				zombies++
			}
		}
	}
	return procs, zombies
}

// loadQuiet waits (up to 10 s) until no VM is alive and the counts that
// drop asynchronously after a run (goroutines ending, connections closing
// on the emulator's side, VM processes being reaped) have stopped changing
// for 300 ms, then returns the figures: a baseline.
func loadQuiet(t *testing.T, srv *exedevtest.Server, repo, tmp string) loadFigures {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	prev := loadMeasure(t, srv, repo, tmp)
	for same := 0; same < 3 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		f := loadMeasure(t, srv, repo, tmp)
		if len(f.VMs) == 0 && f.Goroutines == prev.Goroutines && f.FDs == prev.FDs && len(f.Descendants) == len(prev.Descendants) {
			same++
		} else {
			same = 0
		}
		prev = f
	}
	return prev
}

// loadSettle waits (up to 10 s) until the asynchronous counts are back to
// base, then measures. It returns the last measurement either way; the
// caller compares.
func loadSettle(t *testing.T, srv *exedevtest.Server, repo, tmp string, base loadFigures) loadFigures {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f := loadMeasure(t, srv, repo, tmp)
		settled := f.Goroutines <= base.Goroutines && f.FDs <= base.FDs &&
			len(f.Descendants) <= len(base.Descendants) && len(f.VMs) == 0
		if settled || time.Now().After(deadline) {
			return f
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// loadCompare fails the test for anything in got above base; what names
// the checkpoint. The heap is compared when runs (the runs between base and
// got) is 0 or more.
func loadCompare(t *testing.T, what string, base, got loadFigures, runs int) {
	t.Helper()
	if got.Goroutines > base.Goroutines {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Errorf("%s: %d goroutines, %d at the baseline; all goroutines:\n%s", what, got.Goroutines, base.Goroutines, buf)
	}
	if got.FDs > base.FDs {
		t.Errorf("%s: %d open file descriptors, %d at the baseline; now open:\n%s", what, got.FDs, base.FDs, loadFDTargets(t))
	}
	if runs >= 0 {
		emu := int64(got.EmulatorBytes) - int64(base.EmulatorBytes)
		allowed := int64(loadHeapBase + runs*loadHeapPerRun)
		if grew := int64(got.HeapAlloc) - int64(base.HeapAlloc) - emu; grew > allowed {
			t.Errorf("%s: the live heap grew %d bytes over %d runs beyond the emulator's logs (%d bytes); %d allowed", what, grew, runs, emu, allowed)
		}
		if grew := int64(got.HeapInuse) - int64(base.HeapInuse) - emu; grew > allowed+loadHeapPages {
			t.Errorf("%s: the heap in use grew %d bytes over %d runs beyond the emulator's logs (%d bytes); %d allowed", what, grew, runs, emu, allowed+loadHeapPages)
		}
	}
	if len(got.Descendants) > len(base.Descendants) {
		t.Errorf("%s: descendant processes %q; baseline %q", what, got.Descendants, base.Descendants)
	}
	if !slices.Equal(got.TempEntries, base.TempEntries) {
		t.Errorf("%s: temp dir holds %q, baseline %q", what, got.TempEntries, base.TempEntries)
	}
	loadCheckClean(t, what, got)
}

// loadCheckClean fails the test for anything a finished run may never
// leave: a VM, a zombie, a worktree, a patch dir, a temporary branch.
func loadCheckClean(t *testing.T, what string, f loadFigures) {
	t.Helper()
	if len(f.VMs) > 0 {
		t.Errorf("%s: VMs left on the emulator: %v", what, f.VMs)
	}
	if f.Zombies > 0 {
		t.Errorf("%s: %d zombie processes among %q", what, f.Zombies, f.Descendants)
	}
	if len(f.Worktrees) > 0 || len(f.Patches) > 0 || f.GitWorktrees != 1 || f.MoatBranches != "" {
		t.Errorf("%s: left in the repository: .moat/worktrees %q, .moat/patches %q, %d git worktrees (want 1), moat branches %q",
			what, f.Worktrees, f.Patches, f.GitWorktrees, f.MoatBranches)
	}
}

// loadFDsSettled counts this process's open descriptors, waiting up to 10 s
// for the count to come down to want (the emulator closes its side of a
// connection asynchronously). It allocates little and never forces a
// collection.
func loadFDsSettled(want int) int {
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err := os.Open("/proc/self/fd")
		if err != nil {
			return -1
		}
		names, _ := d.Readdirnames(-1)
		d.Close()
		n := len(names) // d itself included, as in loadMeasure
		if n <= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// loadFDTargets lists what this process's descriptors point at.
func loadFDTargets(t *testing.T) string {
	var b strings.Builder
	for _, fd := range loadDirNames(t, "/proc/self/fd") {
		target, _ := os.Readlink(filepath.Join("/proc/self/fd", fd))
		fmt.Fprintf(&b, "  %s -> %s\n", fd, target)
	}
	return b.String()
}

// TestLoadSequential runs moat.Run MOAT_LOAD_RUNS times, one after another,
// on one exe.dev emulator with an instant agent, merging each run's commit
// into main (the default mode). After a warm-up run it takes a baseline;
// at every quarter of the runs it checks that nothing grew: goroutines, open
// descriptors, child processes and zombies, VMs, temp dirs, worktrees,
// patch dirs and temporary branches exactly; the heap within a documented
// allowance (loadHeapBase) of the baseline and, so that a slow leak shows,
// of the halfway figure. It logs the figures and where the time went at
// every checkpoint.
func TestLoadSequential(t *testing.T) {
	runs := loadEnvInt(t, "MOAT_LOAD_RUNS", 20)
	tmp := loadPrivateTemp(t)
	srv := exedevtest.NewServer(t)
	p := exedev.New(srv.Config()) // the emulator's unlimited dial limiter: one run at a time never bursts
	repo := newRepo(t)

	var shas []string
	phases, phaseOrder := map[string]time.Duration{}, []string(nil) // where the time went since the last checkpoint
	run := func(id string) {
		t.Helper()
		// The default log file, so the log's descriptor is in play too.
		res, err := moat.Run(t.Context(), moat.RunOptions{Repo: repo, Sandbox: p, Agent: loadAgent, Prompt: id})
		if err != nil {
			t.Fatalf("run %s: %v", id, err)
		}
		if len(res.Commits) != 1 || res.Commits[0].Subject != "load "+id || res.Branch != "main" || len(res.Kept) != 0 {
			t.Fatalf("run %s: result %+v", id, res)
		}
		shas = append(shas, res.Commits[0].SHA)
		for _, ph := range res.Phases {
			if _, ok := phases[ph.Name]; !ok {
				phaseOrder = append(phaseOrder, ph.Name)
			}
			phases[ph.Name] += ph.Duration
		}
	}

	run("warmup")
	for name := range phases {
		phases[name] = 0
	}
	base := loadQuiet(t, srv, repo, tmp)
	baseFDs := base.FDs // after a collection: no forgotten file is open
	t.Logf("baseline after 1 warm-up run: %s", base)
	loadCheckClean(t, "after the warm-up run", base)

	checkpoints := map[int]bool{runs: true, runs / 2: true}
	for q := 1; q <= 3; q++ {
		checkpoints[runs*q/4] = true
	}
	var half loadFigures
	start := time.Now()
	lastCheck, lastTime := 0, start
	for i := 1; i <= runs; i++ {
		run(fmt.Sprintf("r%04d", i))
		// Descriptors are counted after every run, before anything forces
		// a collection: an *os.File moat forgets to close is closed by its
		// finalizer at the next GC, which would hide the leak from the
		// checkpoints below.
		if fds := loadFDsSettled(baseFDs); fds > baseFDs {
			t.Fatalf("after run %d: %d open file descriptors, %d at the baseline; now open:\n%s", i, fds, baseFDs, loadFDTargets(t))
		}
		if !checkpoints[i] {
			continue
		}
		took := time.Since(lastTime)
		f := loadSettle(t, srv, repo, tmp, base)
		var spent []string
		for _, name := range phaseOrder {
			spent = append(spent, fmt.Sprintf("%s %.0f", name, float64(phases[name].Microseconds())/1000/float64(i-lastCheck)))
		}
		// Loose objects pile up in the repository (git packs them at 6,700),
		// and git bundle create, so sync in, slows with them: a trend in
		// sync in is the repository's, not a leak.
		t.Logf("after %d runs: %.0f ms/run since the last checkpoint (ms/run by phase: %s); repository: %s; %s",
			i, float64(took.Milliseconds())/float64(i-lastCheck), strings.Join(spent, ", "), git(t, repo, "count-objects"), f)
		for name := range phases {
			phases[name] = 0
		}
		loadCompare(t, fmt.Sprintf("after %d runs", i), base, f, i)
		if i == runs/2 {
			half = f
		}
		if i == runs && runs >= 2 {
			// The second half on its own: a slow leak grows in it too.
			loadCompare(t, fmt.Sprintf("runs %d to %d", runs/2+1, runs), half, f, runs-runs/2)
		}
		if t.Failed() {
			t.FailNow()
		}
		lastCheck, lastTime = i, time.Now()
	}
	t.Logf("%d runs in %s: %.0f ms per run (checkpoints included)", runs, time.Since(start).Round(time.Millisecond), float64(time.Since(start).Milliseconds())/float64(runs))

	// Every run's commit is on main, in order, and main ends with the last.
	if got, want := strings.Fields(git(t, repo, "rev-list", "--reverse", "--first-parent", "main"))[1:], shas; !slices.Equal(got, want) {
		t.Errorf("main's commits after the initial one:\n%q\nthe runs' commits:\n%q", got, want)
	}
	if got, want := git(t, repo, "show", "main:load.txt"), fmt.Sprintf("r%04d", runs); got != want {
		t.Errorf("main:load.txt = %q, want %q", got, want)
	}
	if st := git(t, repo, "status", "--porcelain", "--untracked-files=no"); st != "" {
		t.Errorf("the checkout is not clean after the runs:\n%s", st)
	}
}

// TestLoadConcurrent runs MOAT_LOAD_CONCURRENT moat.Runs at once in one
// repository, each on a named branch of its own, through one exe.dev
// provider with the production dial limiter (Config.SSH.Limiter nil: the
// process-wide limiter exedev.New falls back to, burst 3 then one per
// second). The emulator throttles like exe.dev (WithBurstLimit: more than 5
// new connections within 2 s black-holes the next ones for 30 s); while it
// does not trip it only observes, so this one run is also the plain
// production-rate run.
//
// It asserts that every run succeeds with its one commit on its own branch
// and nowhere else, that nothing is left (VMs, worktrees, temporary
// branches, temp dirs, descriptors, child processes), that the connections
// the emulator saw fit a token bucket of burst 3 and 1/s in every window,
// and that the throttle never tripped: no connection was held and every VM
// was reached with exactly one connection (a held one would time out and be
// redialled).
func TestLoadConcurrent(t *testing.T) {
	const (
		burst     = 3           // the production limiter's burst
		every     = time.Second // and its interval
		skew      = time.Second // between the limiter letting a dial go and the emulator accepting it, under -race on a busy machine
		throttleN = 5
	)
	n := loadEnvInt(t, "MOAT_LOAD_CONCURRENT", 16)
	tmp := loadPrivateTemp(t)
	var emuLog loadSyncBuffer
	srv := exedevtest.NewServer(t,
		exedevtest.WithBurstLimit(throttleN, 2*time.Second, 30*time.Second),
		exedevtest.WithLogger(slog.New(slog.NewTextHandler(&emuLog, &slog.HandlerOptions{Level: slog.LevelInfo}))))
	cfg := srv.Config()
	cfg.SSH.Limiter = nil // exedev.New then uses the process-wide production limiter
	p := exedev.New(cfg)
	repo := newRepo(t)
	mainBefore := git(t, repo, "rev-parse", "main")
	base := loadMeasure(t, srv, repo, tmp)

	type outcome struct {
		res *moat.RunResult
		err error
		dur time.Duration
	}
	outs := make([]outcome, n)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("c%02d", i)
			s := time.Now()
			res, err := moat.Run(ctx, moat.RunOptions{Repo: repo, Sandbox: p, Agent: loadAgent, Prompt: id, Branch: "load/" + id, LogFile: "-"})
			outs[i] = outcome{res, err, time.Since(s)}
		})
	}
	wg.Wait()
	wall := time.Since(start)

	var slowest time.Duration
	for i, o := range outs {
		id := fmt.Sprintf("c%02d", i)
		slowest = max(slowest, o.dur)
		if o.err != nil {
			t.Errorf("run %s: %v", id, o.err)
			// The emulator's side of an internal error is in its log.
			for _, l := range strings.Split(emuLog.String(), "\n") {
				if strings.Contains(l, "level=ERROR") || strings.Contains(l, "level=WARN") {
					t.Logf("emulator: %s", l)
				}
			}
			continue
		}
		if len(o.res.Commits) != 1 || o.res.Commits[0].Subject != "load "+id || o.res.Branch != "load/"+id || len(o.res.Kept) != 0 {
			t.Errorf("run %s: result %+v", id, o.res)
			continue
		}
		sha := o.res.Commits[0].SHA
		if tip := git(t, repo, "rev-parse", "load/"+id); tip != sha {
			t.Errorf("run %s: branch load/%s is at %s, the run's commit is %s", id, id, tip, sha)
		}
		if on := git(t, repo, "branch", "--format=%(refname:short)", "--contains", sha); on != "load/"+id {
			t.Errorf("run %s: its commit is on %q, want only load/%s", id, on, id)
		}
		if got := git(t, repo, "log", "--format=%P %s", "-1", sha); got != mainBefore+" load "+id {
			t.Errorf("run %s: its commit's parent and subject are %q, want it straight on main's %s", id, got, mainBefore)
		}
		if got := git(t, repo, "show", sha+":load.txt"); got != id {
			t.Errorf("run %s: its commit's load.txt is %q", id, got)
		}
	}
	if got := git(t, repo, "rev-parse", "main"); got != mainBefore {
		t.Errorf("main moved from %s to %s; named-branch runs must not touch it", mainBefore, got)
	}
	t.Logf("%d concurrent runs: wall %s, slowest run %s", n, wall.Round(time.Millisecond), slowest.Round(time.Millisecond))

	after := loadSettle(t, srv, repo, tmp, base)
	t.Logf("before: %s", base)
	t.Logf("after:  %s", after)
	// The heap is left out (-1): the first runs in a process build lazy
	// one-time state; TestLoadSequential checks it after a warm-up.
	loadCompare(t, "after the concurrent runs", base, after, -1)

	conns := srv.Connections()
	lobby, perVM := 0, map[string]int{}
	for _, c := range conns {
		if c.VM == "" {
			lobby++
		} else {
			perVM[c.VM]++
		}
	}
	var span time.Duration
	if len(conns) > 1 {
		span = conns[len(conns)-1].Time.Sub(conns[0].Time)
	}
	worst, worstWindow := loadWorstWindow(conns, burst, every, skew)
	t.Logf("connections: %d (lobby %d, VM %d to %d VMs) over %s; most above the bucket in any window: %d (window %s)",
		len(conns), lobby, len(conns)-lobby, len(perVM), span.Round(time.Millisecond), worst, worstWindow)
	if worst > 0 {
		t.Errorf("new connections exceeded a token bucket of burst %d and one per %s (with %s skew) by %d in the window %s; times:\n%s",
			burst, every, skew, worst, worstWindow, loadConnTimes(conns))
	}
	if len(perVM) != n {
		t.Errorf("%d VMs were connected to, want %d (one per run)", len(perVM), n)
	}
	for vm, k := range perVM {
		if k != 1 {
			t.Errorf("VM %s got %d connections, want 1: a connection was held or redialled", vm, k)
		}
	}
	if strings.Contains(emuLog.String(), "connection burst") {
		t.Errorf("the emulator's exe.dev throttle tripped (connections were black-holed):\n%s", emuLog.String())
	}
}

// loadWorstWindow checks conns (in accept order) against a token bucket:
// in any window of length d there may be at most burst + d/every new
// connections; skew widens every window for timing noise between the
// limiter's clock and the emulator's accept. It returns the largest excess
// (0 or less: within the bucket) and the window where it happened.
func loadWorstWindow(conns []exedevtest.Connection, burst int, every, skew time.Duration) (int, string) {
	times := make([]time.Time, len(conns))
	for i, c := range conns {
		times[i] = c.Time
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	worst, where := -burst, ""
	for i := range times {
		for j := i; j < len(times); j++ {
			d := times[j].Sub(times[i])
			allowed := burst + int((d+skew)/every)
			if excess := j - i + 1 - allowed; excess > worst {
				worst = excess
				where = fmt.Sprintf("%d connections in %s from +%s", j-i+1, d.Round(time.Millisecond), times[i].Sub(times[0]).Round(time.Millisecond))
			}
		}
	}
	return worst, where
}

// loadConnTimes formats connection times relative to the first.
func loadConnTimes(conns []exedevtest.Connection) string {
	var b strings.Builder
	for _, c := range conns {
		vm := c.VM
		if vm == "" {
			vm = "(lobby)"
		}
		fmt.Fprintf(&b, "  +%s %s\n", c.Time.Sub(conns[0].Time).Round(time.Millisecond), vm)
	}
	return b.String()
}

// loadSyncBuffer is a bytes.Buffer safe for the emulator's goroutines.
type loadSyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *loadSyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *loadSyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
