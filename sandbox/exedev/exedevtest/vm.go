package exedevtest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/moatdev/moat/internal/procgroup"
	"github.com/moatdev/moat/sandbox/exedev"
)

// vmSpec is what `new` or `cp` asked for.
type vmSpec struct {
	name, image, command, comment string
	cpu                           int
	mem, disk                     int64
	env                           []string
	tags                          []string
	setupScript                   string
}

// vm is one emulated VM: a directory tree, an SSH endpoint and the
// processes its sessions started.
type vm struct {
	s *Server
	vmSpec
	// created changes only under s.mu (Backdate).
	created time.Time
	dir     string // host: the VM's private tree
	home    string // host: the login user's home (/home/exedev inside)
	tmp     string // host: the VM's /tmp (sandboxed only)
	marker  string // value of markerVar in plain mode
	port    int
	ln      net.Listener // own port; nil with legacy routing
	dead    chan struct{}

	mu      sync.Mutex
	readyAt time.Time
	deleted bool
	procs   map[int]struct{} // process groups of running sessions (contained: nsenter's)
	mach    *machine
}

// markerVar marks every process of a VM in plain (unsandboxed) mode, so the
// VM's leftover processes can be found and killed.
const markerVar = "EXEDEVTEST_VM"

var vmSeq struct {
	sync.Mutex
	n int
}

// createVM makes a VM from spec; copyFrom, when set, is a home directory
// whose contents the new VM starts with (cp).
func (s *Server) createVM(spec vmSpec, copyFrom string) (_ *vm, err error) {
	vmSeq.Lock()
	vmSeq.n++
	seq := vmSeq.n
	vmSeq.Unlock()
	v := &vm{
		s:       s,
		vmSpec:  spec,
		created: time.Now(),
		dir:     filepath.Join(s.dir, "vms", spec.name+"."+strconv.Itoa(seq)),
		dead:    make(chan struct{}),
		procs:   map[int]struct{}{},
	}
	v.home = filepath.Join(v.dir, "home")
	v.tmp = filepath.Join(v.dir, "tmp")
	v.marker = filepath.Base(s.dir) + "/" + filepath.Base(v.dir)
	defer func() {
		if err != nil {
			v.destroy()
		}
	}()
	if err := os.MkdirAll(v.home, 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(v.dir, "homeroot", "exedev"), 0o755); err != nil {
		return nil, err
	}
	if err := os.Mkdir(v.tmp, 0o777); err != nil {
		return nil, err
	}
	os.Chmod(v.tmp, 0o1777|fs.ModeSticky)
	if copyFrom != "" {
		if err := copyTree(copyFrom, v.home); err != nil {
			return nil, fmt.Errorf("copy VM disk: %w", err)
		}
	}
	if s.sandbox != nil {
		if v.mach, err = s.sandbox.start(v.name, v.home, v.tmp); err != nil {
			return nil, err
		}
	}
	if err := v.writeRecord(); err != nil {
		return nil, err
	}
	if s.legacyLn != nil {
		v.port = s.legacyLn.Addr().(*net.TCPAddr).Port
	} else {
		if v.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, err
		}
		v.port = v.ln.Addr().(*net.TCPAddr).Port
	}
	v.readyAt = time.Now().Add(s.opts.readyDelay)

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errors.New("emulator closed")
	}
	s.vms[v.name] = v
	if v.ln != nil {
		s.wg.Add(1)
		go s.acceptLoop(v.ln, v, func(c net.Conn) {
			if !v.ready() {
				resetConn(c)
				return
			}
			s.serveVMConn(c, v)
		})
	}
	s.mu.Unlock()
	s.log.Info("exedevtest: VM created", "name", v.name, "port", v.port, "dir", v.dir)
	if v.setupScript != "" {
		v.runSetup()
	}
	return v, nil
}

// runSetup runs the --setup-script in the background, like exeuntu's
// first-boot /exe.dev/setup (it may still run once SSH works). Its output
// goes to <vm dir>/setup.log on the host.
func (v *vm) runSetup() {
	log, err := os.Create(filepath.Join(v.dir, "setup.log"))
	if err != nil {
		return
	}
	v.s.wg.Add(1)
	go func() {
		defer v.s.wg.Done()
		defer log.Close()
		v.run(runSpec{argv: []string{"/bin/sh", "-c", v.setupScript}, env: v.baseEnv(), stdout: log, stderr: log, abort: v.dead})
	}()
}

// remove takes VM name out of the list; the caller destroys it.
func (s *Server) remove(name string) *vm {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.vms[name]
	delete(s.vms, name)
	return v
}

func (v *vm) isDeleted() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.deleted
}

func (v *vm) ready() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return !v.deleted && !time.Now().Before(v.readyAt)
}

// waitReady waits until the VM accepts SSH; false when abort closed or the
// VM went away first.
func (v *vm) waitReady(abort <-chan struct{}) bool {
	for {
		v.mu.Lock()
		wait := time.Until(v.readyAt)
		deleted := v.deleted
		v.mu.Unlock()
		if deleted {
			return false
		}
		if wait <= 0 {
			return true
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-abort:
			t.Stop()
			return false
		case <-v.dead:
			t.Stop()
			return false
		}
	}
}

// closeConns closes every connection to v.
func (v *vm) closeConns() {
	v.s.mu.Lock()
	var cs []net.Conn
	for c, owner := range v.s.conns {
		if owner == v {
			cs = append(cs, c)
		}
	}
	v.s.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}

// killAll kills every process of the VM: its sessions' process groups, then
// whatever else still runs in it (daemons that left their group).
func (v *vm) killAll() {
	v.mu.Lock()
	groups := make([]int, 0, len(v.procs))
	for pg := range v.procs {
		groups = append(groups, pg)
	}
	v.mu.Unlock()
	for _, pg := range groups {
		killGroup(pg, "KILL")
	}
	v.sweep()
}

// destroy deletes the VM: closes its endpoint and connections, kills its
// processes and removes its directory.
func (v *vm) destroy() error {
	if !v.end() {
		return nil
	}
	v.s.log.Info("exedevtest: VM deleted", "name", v.name)
	return removeAll(v.dir)
}

// end stops the VM's processes, connections and machine, once: it reports
// whether this call did.
func (v *vm) end() bool {
	v.mu.Lock()
	if v.deleted {
		v.mu.Unlock()
		return false
	}
	v.deleted = true
	close(v.dead)
	v.mu.Unlock()
	if v.ln != nil {
		v.ln.Close()
	}
	v.closeConns()
	v.killAll()
	v.stopMachine()
	v.sweep()
	v.releaseMachine()
	return true
}

// kept reports whether moat tagged the VM as holding work it could not
// bring home (exedev.KeptTag).
func (v *vm) kept() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Contains(v.tags, exedev.KeptTag)
}

// stop ends the VM but leaves its files on the host: its directory stays,
// a leftover that moat sandbox recover can bring the work home from.
func (v *vm) stop() {
	if v.end() {
		v.s.log.Info("exedevtest: VM stopped, its files kept", "name", v.name, "dir", v.dir)
	}
}

// restart kills the VM's processes and connections, empties /tmp and makes
// the VM unready again for the ready delay; the home directory is kept.
func (v *vm) restart() error {
	v.mu.Lock()
	v.readyAt = time.Now().Add(v.s.opts.readyDelay)
	v.mu.Unlock()
	v.closeConns()
	v.killAll()
	v.stopMachine()
	v.sweep()
	v.releaseMachine()
	if err := os.RemoveAll(v.tmp); err != nil {
		return err
	}
	if err := os.Mkdir(v.tmp, 0o777); err != nil {
		return err
	}
	os.Chmod(v.tmp, 0o1777|fs.ModeSticky)
	if v.s.sandbox != nil {
		m, err := v.s.sandbox.start(v.name, v.home, v.tmp)
		if err != nil {
			return err
		}
		v.mu.Lock()
		v.mach = m
		v.mu.Unlock()
	}
	return v.writeRecord()
}

// accessInfo is how clients reach a VM.
type accessInfo struct {
	host, user, dest string
	port             int
	httpsURL         string
}

func (v *vm) access() accessInfo {
	a := accessInfo{host: "127.0.0.1", port: v.port, httpsURL: "https://" + v.name + ".exe.localhost"}
	a.dest = a.host
	if v.s.opts.legacyRouting {
		a.user = "vm+" + v.name
		a.dest = a.user + "@" + a.host
	}
	return a
}

func (v *vm) tagList() []string {
	v.s.mu.Lock()
	defer v.s.mu.Unlock()
	if len(v.tags) == 0 {
		return nil
	}
	t := slices.Clone(v.tags)
	sort.Strings(t)
	return slices.Compact(t)
}

func (v *vm) updateTags(tags []string, remove bool) []string {
	v.s.mu.Lock()
	if remove {
		v.tags = slices.DeleteFunc(v.tags, func(t string) bool { return slices.Contains(tags, t) })
	} else {
		v.tags = append(v.tags, tags...)
	}
	v.s.mu.Unlock()
	return v.tagList()
}

// specCopy is the spec of a copy of v (cp).
func (v *vm) specCopy(withTags bool) vmSpec {
	v.s.mu.Lock()
	spec := v.vmSpec // tags change under s.mu
	v.s.mu.Unlock()
	spec.name = ""
	spec.setupScript = ""
	spec.env = slices.Clone(v.env)
	spec.tags = nil
	if withTags {
		spec.tags = v.tagList()
	}
	return spec
}

// stopMachine stops the VM's namespace holder, if any.
func (v *vm) stopMachine() {
	v.mu.Lock()
	m := v.mach
	v.mu.Unlock()
	if m != nil {
		m.stop()
	}
}

// releaseMachine lets the machine's namespaces go, once the last sweep
// by them is over.
func (v *vm) releaseMachine() {
	v.mu.Lock()
	m := v.mach
	v.mu.Unlock()
	if m != nil {
		m.release()
	}
}

// homeInside is the login user's home as VM processes see it.
func (v *vm) homeInside() string {
	if v.s.sandbox != nil {
		return "/home/exedev"
	}
	return v.home
}

// baseEnv is the environment of a login on the VM, before the session's own
// env requests.
func (v *vm) baseEnv() []string {
	path := vmPath()
	if v.s.sandbox != nil {
		path = v.s.sandbox.path // the one whose toolchains the VM sees
	}
	env := []string{
		"PATH=" + path,
		"HOME=" + v.homeInside(),
		"USER=exedev",
		"LOGNAME=exedev",
		"SHELL=/bin/sh",
		"LANG=C.UTF-8",
	}
	if v.s.sandbox == nil {
		env = append(env, markerVar+"="+v.marker)
	}
	return append(env, v.env...)
}

// vmPath is the PATH of VM logins: the emulator's own.
func vmPath() string {
	if p := os.Getenv("PATH"); p != "" {
		return p
	}
	return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
}

// exitInfo is how a process ended.
type exitInfo struct {
	code   int
	signal string // signal name without "SIG" when killed by a signal
}

// runSpec is one process to run on a VM.
type runSpec struct {
	argv           []string
	env            []string
	stdin          io.Reader // nil: empty
	stdout, stderr io.Writer
	signals        <-chan string   // signal names to deliver to the process group
	abort          <-chan struct{} // closed: kill the process group and stop waiting for output
	firstOutput    func()          // called once, after the first output was written
	// exited, when set, is called once the process has exited, before
	// its output has ended (a background child may hold it), as sshd
	// sends the exit status when its child exits.
	exited func(exitInfo)
}

// run runs a process on the VM in a new session (its PID is its process
// group ID) and waits for it to exit and for its output to be fully
// written.
func (v *vm) run(r runSpec) (exitInfo, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return exitInfo{}, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return exitInfo{}, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		outR.Close()
		outW.Close()
		return exitInfo{}, err
	}
	cmd := v.command(r.argv, r.env)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	setSession(cmd)

	v.mu.Lock()
	if v.deleted {
		err = errors.New("VM deleted")
	} else {
		err = cmd.Start()
	}
	if err == nil {
		v.procs[cmd.Process.Pid] = struct{}{}
	}
	v.mu.Unlock()
	inR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		errR.Close()
		return exitInfo{}, err
	}
	pgid := cmd.Process.Pid
	target := v.signalTarget(cmd)
	defer func() {
		v.mu.Lock()
		delete(v.procs, pgid)
		v.mu.Unlock()
	}()

	go func() {
		if r.stdin != nil {
			io.Copy(inW, r.stdin)
		}
		inW.Close()
	}()
	var once sync.Once
	var outputs sync.WaitGroup
	pump := func(dst io.Writer, src *os.File) {
		defer outputs.Done()
		buf := make([]byte, 32<<10)
		failed := false
		for {
			n, err := src.Read(buf)
			if n > 0 && !failed {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					failed = true // keep draining so the process never blocks
				} else if r.firstOutput != nil {
					once.Do(r.firstOutput)
				}
			}
			if err != nil {
				return
			}
		}
	}
	outputs.Add(2)
	go pump(r.stdout, outR)
	go pump(r.stderr, errR)

	done := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case sig := <-r.signals:
				if g := target(); g != 0 {
					killGroup(g, sig)
				}
			case <-r.abort:
				if g := target(); g != 0 {
					killGroup(g, "KILL")
				}
				killGroup(pgid, "KILL") // nsenter too, when contained
				outR.Close()
				errR.Close()
				return
			case <-done:
				return
			}
		}
	}()
	// The leader stays a zombie until the output is drained and the
	// watcher is gone, so a signal sent to its group meanwhile cannot hit
	// a process that took its pid.
	st, reap := procgroup.WaitExitedStatus(cmd)
	if r.exited != nil {
		r.exited(exitOf(st))
	}
	outputs.Wait()
	close(done)
	<-watched
	reap()
	outR.Close()
	errR.Close()
	return waitStatus(cmd.ProcessState), nil
}

// copyTree copies the directory tree src into dst (which exists), keeping
// modes and symbolic links.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.Mkdir(target, info.Mode().Perm()|0o700)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			in, err := os.Open(p)
			if err != nil {
				return err
			}
			defer in.Close()
			out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, info.Mode().Perm())
			if err != nil {
				return err
			}
			if _, err := io.Copy(out, in); err != nil {
				out.Close()
				return err
			}
			return out.Close()
		default:
			return nil // sockets, fifos, devices: not copied
		}
	})
}
