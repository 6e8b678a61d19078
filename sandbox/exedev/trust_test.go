package exedev_test

// SSH trust, against the emulator and real SSH: the lobby's host key is
// checked against known_hosts with accept-new and a changed key is refused
// before any command is sent; VMs are pinned to the lobby's key for their
// whole life; no agent, X11 or port forwarding is ever requested; and with
// ~/.ssh/id_exe present the SSH agent is never contacted.
//
// Each test takes a second or two; there is no longer mode.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/moatdev/moat"
	"github.com/moatdev/moat/agent/command"
	"github.com/moatdev/moat/internal/netfault"
	"github.com/moatdev/moat/internal/sshx"
	"github.com/moatdev/moat/sandbox"
	"github.com/moatdev/moat/sandbox/exedev"
	"github.com/moatdev/moat/sandbox/exedev/exedevtest"
)

// --- helpers ---

// newUserHome makes a HOME with an empty ~/.ssh.
func newUserHome(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	return home
}

// userConfig points a provider at srv the way a user's machine is set up:
// the registered key is ~/.ssh/id_exe when idExe is true (else no key file
// at all), known_hosts is ~/.ssh/known_hosts (empty until a first
// connection records the lobby), ~/.ssh/config is read, and the agent is
// whatever SSH_AUTH_SOCK says.
func userConfig(t *testing.T, srv *exedevtest.Server, home string, idExe bool) exedev.Config {
	t.Helper()
	cfg := srv.Config()
	if idExe {
		key, err := os.ReadFile(srv.KeyFile())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(home, ".ssh", "id_exe"), key, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg.IdentityFile = ""
	cfg.KnownHostsFile = ""
	cfg.SSH.HomeDir = home
	cfg.SSH.SSHConfigFile = ""
	cfg.SSH.AgentSocket = ""
	return cfg
}

// registeredKey is the emulator's registered private key, for an agent.
func registeredKey(t *testing.T, srv *exedevtest.Server) any {
	t.Helper()
	b, err := os.ReadFile(srv.KeyFile())
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.ParseRawPrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// recordingAgent is an SSH agent on a unix socket that records every
// connection made to it and every request it answers.
type recordingAgent struct {
	kr     agent.ExtendedAgent
	socket string

	mu    sync.Mutex
	conns int
	calls map[string]int
}

// startRecordingAgent serves an agent holding keys (private keys as
// agent.AddedKey takes them).
func startRecordingAgent(t *testing.T, keys ...any) *recordingAgent {
	t.Helper()
	kr := agent.NewKeyring().(agent.ExtendedAgent)
	for _, k := range keys {
		if err := kr.Add(agent.AddedKey{PrivateKey: k, Comment: "recorded"}); err != nil {
			t.Fatal(err)
		}
	}
	// sun_path holds 108 bytes: t.TempDir() may be longer.
	dir, err := os.MkdirTemp("", "moat-agent-")
	if err != nil {
		t.Fatal(err)
	}
	a := &recordingAgent{kr: kr, socket: filepath.Join(dir, "s"), calls: map[string]int{}}
	ln, err := net.Listen("unix", a.socket)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		os.RemoveAll(dir)
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			a.mu.Lock()
			a.conns++
			a.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				agent.ServeAgent(a, c)
			}()
		}
	}()
	return a
}

func (a *recordingAgent) record(call string) {
	a.mu.Lock()
	a.calls[call]++
	a.mu.Unlock()
}

// seen returns the connections made and the requests answered so far.
func (a *recordingAgent) seen() (conns int, calls map[string]int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	calls = map[string]int{}
	for k, v := range a.calls {
		calls[k] = v
	}
	return a.conns, calls
}

func (a *recordingAgent) List() ([]*agent.Key, error) { a.record("List"); return a.kr.List() }
func (a *recordingAgent) Sign(k ssh.PublicKey, data []byte) (*ssh.Signature, error) {
	a.record("Sign")
	return a.kr.Sign(k, data)
}
func (a *recordingAgent) SignWithFlags(k ssh.PublicKey, data []byte, f agent.SignatureFlags) (*ssh.Signature, error) {
	a.record("Sign")
	return a.kr.SignWithFlags(k, data, f)
}
func (a *recordingAgent) Add(k agent.AddedKey) error     { a.record("Add"); return a.kr.Add(k) }
func (a *recordingAgent) Remove(k ssh.PublicKey) error   { a.record("Remove"); return a.kr.Remove(k) }
func (a *recordingAgent) RemoveAll() error               { a.record("RemoveAll"); return a.kr.RemoveAll() }
func (a *recordingAgent) Lock(p []byte) error            { a.record("Lock"); return a.kr.Lock(p) }
func (a *recordingAgent) Unlock(p []byte) error          { a.record("Unlock"); return a.kr.Unlock(p) }
func (a *recordingAgent) Signers() ([]ssh.Signer, error) { a.record("Signers"); return a.kr.Signers() }
func (a *recordingAgent) Extension(t string, c []byte) ([]byte, error) {
	a.record("Extension:" + t)
	return a.kr.Extension(t, c)
}

// wantParts fails unless s contains every part.
func wantParts(t *testing.T, what, s string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(s, p) {
			t.Errorf("%s does not contain %q:\n%s", what, p, s)
		}
	}
}

// forbiddenRequests are the SSH requests and channels that forward the
// agent, X11 or ports.
func forbiddenRequests(reqs map[string]int) []string {
	var bad []string
	for kind, n := range reqs {
		k := strings.ToLower(kind)
		if n > 0 && (strings.Contains(k, "agent") || strings.Contains(k, "x11") || strings.Contains(k, "forward") ||
			k == "channel:direct-tcpip" || k == "channel:direct-streamlocal@openssh.com") {
			bad = append(bad, kind)
		}
	}
	slices.Sort(bad)
	return bad
}

// --- the lobby's host key ---

// TestLobbyHostKeyChanged: a first connection records the lobby's key in
// ~/.ssh/known_hosts (accept-new); once the lobby presents another key,
// every operation is refused with a message saying what happened and what
// to do, no lobby command is sent, and known_hosts keeps the old key.
func TestLobbyHostKeyChanged(t *testing.T) {
	srv := exedevtest.NewServer(t)
	home := newUserHome(t)
	cfg := userConfig(t, srv, home, false)
	cfg.IdentityFile = srv.KeyFile()
	knownHosts := filepath.Join(home, ".ssh", "known_hosts")
	host := knownhosts.Normalize(srv.LobbyAddr()) // [127.0.0.1]:PORT

	// Accept-new: an unknown lobby is trusted on first use and recorded.
	p := exedev.New(cfg)
	if _, err := p.Whoami(t.Context()); err != nil {
		t.Fatalf("Whoami with an unknown lobby (accept-new): %v", err)
	}
	recorded, err := os.ReadFile(knownHosts)
	if err != nil {
		t.Fatalf("the lobby's key was not recorded: %v", err)
	}
	oldKey := srv.HostKey()
	if want := knownhosts.Line([]string{host}, oldKey) + "\n"; string(recorded) != want {
		t.Fatalf("known_hosts after the first connection:\n%q\nwant\n%q", recorded, want)
	}

	newKey, err := srv.ChangeHostKey()
	if err != nil {
		t.Fatal(err)
	}
	sent := len(srv.Transcript())
	reqs := srv.Requests()
	dials := len(srv.Connections())

	ops := []struct {
		name string
		run  func(p *exedev.Provider) error
	}{
		{"Whoami", func(p *exedev.Provider) error { _, err := p.Whoami(t.Context()); return err }},
		{"List", func(p *exedev.Provider) error { _, err := p.List(t.Context()); return err }},
		{"Remove", func(p *exedev.Provider) error { return p.Remove(t.Context(), "moat-some-vm") }},
		{"Create", func(p *exedev.Provider) error {
			h, err := p.Create(t.Context(), sandbox.CreateOptions{})
			if err == nil {
				h.Close(context.Background())
			}
			return err
		}},
	}
	for _, op := range ops {
		// The same provider (whose lobby connection was closed after
		// Whoami) and a fresh one: both dial anew.
		for i, prov := range []*exedev.Provider{p, exedev.New(cfg)} {
			before := len(srv.Connections())
			err := op.run(prov)
			var hk *sshx.HostKeyChangedError
			if !errors.As(err, &hk) {
				t.Fatalf("%s after the lobby's key changed: %v, want a *sshx.HostKeyChangedError", op.name, err)
			}
			// One connection: a changed host key is final, not worth retrying.
			if n := len(srv.Connections()) - before; n != 1 {
				t.Errorf("%s made %d connections to be refused, want 1", op.name, n)
			}
			msg := err.Error()
			wantParts(t, op.name+"'s error", msg,
				"host key of "+host+" has changed",
				ssh.FingerprintSHA256(newKey), ssh.FingerprintSHA256(oldKey),
				knownHosts+":1",
				"ssh-keygen -R '"+host+"'")
			if hk.File != knownHosts || hk.Line != 1 || hk.Host != host {
				t.Errorf("%s: HostKeyChangedError %+v", op.name, hk)
			}
			if i == 0 {
				t.Logf("%s: user sees: %v", op.name, err)
			}
		}
	}

	if got := srv.Transcript(); len(got) != sent {
		t.Errorf("lobby commands sent after the host key changed: %+v", got[sent:])
	}
	if after := srv.Requests(); after["channel:session"] != reqs["channel:session"] || after["exec"] != reqs["exec"] {
		t.Errorf("sessions opened after the host key changed: before %v, after %v", reqs, after)
	}
	if n := len(srv.Connections()) - dials; n < 2*len(ops) {
		t.Errorf("%d connections after the change, want at least %d: the operations did not even dial", n, 2*len(ops))
	}
	if vms := srv.VMs(); len(vms) != 0 {
		t.Errorf("VMs exist: %v", vms)
	}
	if b, err := os.ReadFile(knownHosts); err != nil || string(b) != string(recorded) {
		t.Errorf("known_hosts changed after the refusal (%v):\n%s", err, b)
	}
}

// TestLobbyHostKeyOtherTypes: known_hosts holds the lobby under a hashed
// name and a key of another type only (ECDSA; the lobby has ED25519). That
// is a changed key too: refused, nothing sent, nothing recorded.
func TestLobbyHostKeyOtherType(t *testing.T) {
	srv := exedevtest.NewServer(t)
	home := newUserHome(t)
	cfg := userConfig(t, srv, home, false)
	cfg.IdentityFile = srv.KeyFile()
	knownHosts := filepath.Join(home, ".ssh", "known_hosts")
	host := knownhosts.Normalize(srv.LobbyAddr())
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ssh.NewPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	content := knownhosts.Line([]string{knownhosts.HashHostname(host)}, ecKey) + "\n"
	if err := os.WriteFile(knownHosts, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = exedev.New(cfg).Whoami(t.Context())
	if err == nil {
		t.Fatal("Whoami succeeded although known_hosts holds another key for the lobby")
	}
	t.Logf("user sees: %v", err)
	wantParts(t, "the error", err.Error(), host, knownHosts, ssh.FingerprintSHA256(ecKey), "ssh-keygen -R '"+host+"'")
	if sshx.IsConnectError(err) {
		t.Errorf("the refusal counts as a connection error, which callers retry: %v", err)
	}
	if n := len(srv.Transcript()); n != 0 {
		t.Errorf("%d lobby commands were sent", n)
	}
	if b, _ := os.ReadFile(knownHosts); string(b) != content {
		t.Errorf("known_hosts changed:\n%s", b)
	}
}

// --- VM host keys ---

// TestVMHostKeyPinned: a VM is pinned to the lobby's key seen at Create for
// its whole life. When its key changes and the connection is redialled,
// every operation is refused before any command reaches the VM; Close
// still deletes the VM over the lobby connection that was made with the
// trusted key.
func TestVMHostKeyPinned(t *testing.T) {
	srv := exedevtest.NewServer(t)
	oldKey := srv.HostKey()
	h, err := exedev.New(srv.Config()).Create(t.Context(), sandbox.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	vm := h.(*exedev.Handle).VM().Name
	if r, err := h.Exec(t.Context(), "echo ok", sandbox.ExecOptions{}); err != nil || r.Stdout != "ok\n" {
		t.Fatalf("exec before the change: %v %+v", err, r)
	}

	newKey, err := srv.ChangeHostKey()
	if err != nil {
		t.Fatal(err)
	}
	if n := srv.DropConnections(vm); n < 1 {
		t.Fatalf("DropConnections(%s) closed %d connections", vm, n)
	}
	vmDials := func() int {
		n := 0
		for _, c := range srv.Connections() {
			if c.VM == vm {
				n++
			}
		}
		return n
	}
	dials, execs := vmDials(), srv.Requests()["exec"]
	home, _ := srv.VMHome(vm)

	refused := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s succeeded on a VM presenting a changed host key", what)
		}
		if sshx.IsConnectError(err) {
			t.Errorf("%s: the refusal counts as a connection error, which callers retry: %v", what, err)
		}
		wantParts(t, what+"'s error", err.Error(), vm, "host key",
			ssh.FingerprintSHA256(newKey), ssh.FingerprintSHA256(oldKey), "refusing to connect")
	}
	for i := range 2 { // a refusal is not remembered as an acceptance
		before := vmDials()
		_, err := h.Exec(t.Context(), "touch pwned", sandbox.ExecOptions{})
		refused("Exec", err)
		if n := vmDials() - before; n != 1 {
			t.Errorf("Exec %d made %d connections to be refused, want 1 (a redial, not retried)", i, n)
		}
		if i == 0 {
			t.Logf("user sees: %v", err)
		}
	}
	src := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(src, []byte("not for an impostor"), 0o600)
	// CopyIn is refused too, but its error blames the host side ("reading
	// the host files: the sandbox side of the copy ended"): sshhandle's
	// CopyIn prefers the tar writer's error, here only a consequence. So
	// only the refusal is checked; see the report on sshhandle.CopyIn.
	if err := h.CopyIn(t.Context(), src, "secret"); err == nil {
		t.Fatal("CopyIn succeeded on a VM presenting a changed host key")
	} else {
		t.Logf("CopyIn: user sees: %v", err)
	}
	refused("CopyOut", h.CopyOut(t.Context(), "/etc/hostname", filepath.Join(t.TempDir(), "out")))

	if vmDials() <= dials {
		t.Errorf("no new connection to the VM: the refusals were not made by a redial")
	}
	if got := srv.Requests()["exec"]; got != execs {
		t.Errorf("%d commands reached the VM after its key changed", got-execs)
	}
	for _, f := range []string{"pwned", "secret", "workspace/pwned", "workspace/secret"} {
		if _, err := os.Stat(filepath.Join(home, f)); err == nil {
			t.Errorf("%s exists in the VM", f)
		}
	}

	// Close deletes the VM through the lobby connection still open.
	sent := len(srv.Transcript())
	if err := h.Close(t.Context()); err != nil {
		t.Errorf("Close: %v", err)
	}
	assertNoVMs(t, srv)
	if tr := srv.Transcript(); len(tr) != sent+1 || tr[sent].Command != "rm --json "+vm {
		t.Errorf("lobby commands at Close: %+v, want one rm", tr[sent:])
	}
}

// TestVMHostKeyChangedDuringCreate: the key changes between `new` and the
// first connection to the VM. The VM is refused, Create fails naming it,
// and deletes it over the lobby connection `new` used.
func TestVMHostKeyChangedDuringCreate(t *testing.T) {
	// The key must change before the VM is ready: leave the watcher time.
	srv := exedevtest.NewServer(t, exedevtest.WithReadyDelay(3*time.Second))
	changed := make(chan error, 1)
	go func() {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			for _, c := range srv.Transcript() {
				if strings.HasPrefix(c.Command, "new ") {
					_, err := srv.ChangeHostKey()
					changed <- err
					return
				}
			}
		}
		changed <- errors.New("no new command within 10s")
	}()
	_, err := exedev.New(srv.Config()).Create(t.Context(), sandbox.CreateOptions{})
	if cerr := <-changed; cerr != nil {
		t.Fatal(cerr)
	}
	if err == nil {
		t.Fatal("Create succeeded although the VM presented a changed host key")
	}
	t.Logf("user sees: %v", err)
	var name string
	for _, c := range srv.Transcript() {
		if v, ok := strings.CutPrefix(c.Command, "rm --json "); ok {
			name = v
		}
	}
	if name == "" {
		t.Fatalf("Create did not delete the VM: transcript %+v", srv.Transcript())
	}
	wantParts(t, "Create's error", err.Error(), "exe.dev VM "+name, "refusing to connect")
	if sshx.IsConnectError(err) {
		t.Errorf("the refusal counts as a connection error: %v", err)
	}
	assertNoVMs(t, srv)
	dialled := false
	for _, c := range srv.Connections() {
		dialled = dialled || c.VM == name
	}
	if !dialled {
		t.Error("the VM was never dialled: Create failed before the check under test")
	}
}

// TestVMHostKeyChangedLobbyLost: as TestVMHostKeyPinned, but the lobby
// connection is lost too, so the lobby can only be reached by a new
// connection, which the changed key refuses. Close cannot delete the VM
// then; it must say so promptly, naming the VM and how to delete it, and
// send nothing to the impostor.
func TestVMHostKeyChangedLobbyLost(t *testing.T) {
	srv := exedevtest.NewServer(t)
	proxy := netfault.Start(t, srv.LobbyAddr())
	home := newUserHome(t)
	cfg := srv.Config()
	cfg.Lobby = proxy.Addr()
	cfg.KnownHostsFile = filepath.Join(home, ".ssh", "known_hosts") // accept-new
	p := exedev.New(cfg)
	h, err := p.Create(t.Context(), sandbox.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vm := h.(*exedev.Handle).VM().Name
	if _, err := h.Exec(t.Context(), "true", sandbox.ExecOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.ChangeHostKey(); err != nil {
		t.Fatal(err)
	}
	srv.DropConnections(vm)
	proxy.Cut()
	sent := len(srv.Transcript())

	if _, err := h.Exec(t.Context(), "true", sandbox.ExecOptions{}); err == nil {
		t.Fatal("Exec succeeded on a VM presenting a changed host key")
	}
	lobbyDials := func() int {
		n := 0
		for _, c := range srv.Connections() {
			if c.VM == "" {
				n++
			}
		}
		return n
	}
	before := lobbyDials()
	err = h.Close(t.Context())
	if err == nil {
		t.Fatal("Close reported success, but the lobby cannot be trusted and the VM is still there")
	}
	t.Logf("user sees: %v", err)
	if n := lobbyDials() - before; n != 1 {
		t.Errorf("Close made %d connections to the lobby, want 1: a changed host key is final, not worth retrying", n)
	}
	var hk *sshx.HostKeyChangedError
	if !errors.As(err, &hk) {
		t.Errorf("Close: %v, want a *sshx.HostKeyChangedError inside", err)
	}
	proxyHost := knownhosts.Normalize(proxy.Addr())
	wantParts(t, "Close's error", err.Error(), "delete exe.dev VM "+vm, "rm "+vm,
		"host key of "+proxyHost+" has changed", "ssh-keygen -R '"+proxyHost+"'")
	if tr := srv.Transcript(); len(tr) != sent {
		t.Errorf("lobby commands sent after the key changed: %+v", tr[sent:])
	}
	if vms := srv.VMs(); len(vms) != 1 || vms[0] != vm {
		t.Errorf("VMs %v, want [%s] (nothing could delete it)", vms, vm)
	}
}

// --- forwarding and the agent ---

// forwardingConfig is an ~/.ssh/config asking for every kind of forwarding,
// which moat must ignore.
const forwardingConfig = "Host *\n  ForwardAgent yes\n  ForwardX11 yes\n  ForwardX11Trusted yes\n  LocalForward 7001 127.0.0.1:7002\n  RemoteForward 7003 127.0.0.1:7004\n  DynamicForward 7005\n"

// forwardingSetup starts an emulator, a recording agent in SSH_AUTH_SOCK
// holding the registered key (so it is used to log in), and a user home
// whose ~/.ssh/config asks for every kind of forwarding.
func forwardingSetup(t *testing.T) (*exedevtest.Server, *recordingAgent, string) {
	srv := exedevtest.NewServer(t)
	ag := startRecordingAgent(t, registeredKey(t, srv))
	t.Setenv("SSH_AUTH_SOCK", ag.socket)
	home := newUserHome(t)
	if err := os.WriteFile(filepath.Join(home, ".ssh", "config"), []byte(forwardingConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv, ag, home
}

// assertNoForwarding checks that srv received no forwarding request, and
// that the agent did log in (or the test would not test a working agent).
// It returns the requests srv received.
func assertNoForwarding(t *testing.T, srv *exedevtest.Server, ag *recordingAgent) map[string]int {
	t.Helper()
	reqs := srv.Requests()
	if bad := forbiddenRequests(reqs); len(bad) > 0 {
		t.Errorf("forwarding requested: %v (all requests: %v)", bad, reqs)
	}
	if conns, calls := ag.seen(); conns == 0 || calls["Sign"] == 0 {
		t.Errorf("the agent was not used to log in (%d connections, %v): the test does not test a working agent", conns, calls)
	}
	return reqs
}

// TestNoForwarding: a whole sandbox life, with a working agent in
// SSH_AUTH_SOCK (it holds the registered key, so it is used to log in) and
// an ~/.ssh/config asking for agent, X11 and port forwarding: the emulator
// receives no forwarding request of any kind.
func TestNoForwarding(t *testing.T) {
	srv, ag, home := forwardingSetup(t)
	p := exedev.New(userConfig(t, srv, home, false))
	if _, err := p.Whoami(t.Context()); err != nil {
		t.Fatal(err)
	}
	h, err := p.Create(t.Context(), sandbox.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := h.Exec(t.Context(), `echo "${SSH_AUTH_SOCK:-none} ${DISPLAY:-none}"`, sandbox.ExecOptions{})
			if err != nil || r.Stdout != "none none\n" {
				t.Errorf("exec %d: %v %+v (the VM sees an agent or a display)", i, err, r)
			}
		}()
	}
	wg.Wait()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("payload"), 0o600)
	if err := h.CopyIn(t.Context(), dir, "in"); err != nil {
		t.Fatal(err)
	}
	if err := h.CopyOut(t.Context(), "in/f", filepath.Join(dir, "back")); err != nil {
		t.Fatal(err)
	}
	if _, err := p.List(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	assertNoVMs(t, srv)

	reqs := assertNoForwarding(t, srv, ag)
	// The setup is what it claims: commands ran.
	if reqs["exec"] < 15 || reqs["channel:session"] < 15 {
		t.Errorf("requests %v: fewer commands than the test ran", reqs)
	}
}

// TestNoForwardingInRun: a whole moat.Run (sync in, an agent that commits,
// a copied file, sync out, merge, close) with a working agent and the same
// forwarding ssh_config: no forwarding request of any kind.
func TestNoForwardingInRun(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	srv, ag, home := forwardingSetup(t)
	repo := t.TempDir()
	gitRun := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "LC_ALL=C")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	gitRun("init", "-q", "-b", "main")
	gitRun("config", "user.name", "Host User")
	gitRun("config", "user.email", "host@example.com")
	os.WriteFile(filepath.Join(repo, "README"), []byte("hello\n"), 0o644)
	gitRun("add", ".")
	gitRun("commit", "-q", "-m", "initial")
	os.WriteFile(filepath.Join(repo, ".env"), []byte("TOKEN=x\n"), 0o600) // untracked, copied in

	res, err := moat.Run(t.Context(), moat.RunOptions{
		Repo:    repo,
		Sandbox: exedev.New(userConfig(t, srv, home, false)),
		Agent: command.New(command.Config{Command: `test -f .env && test -z "${SSH_AUTH_SOCK:-}" && ` +
			`echo trusted >> README && git add README && git commit -q -m agent-commit`}),
		Prompt:         "commit",
		CopyToWorktree: []string{".env"},
		LogFile:        "-",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Commits) != 1 || gitRun("log", "-1", "--format=%s", "main") != "agent-commit" {
		t.Fatalf("the run did not bring the agent's commit back: %+v", res)
	}
	assertNoVMs(t, srv)
	assertNoForwarding(t, srv, ag)
}

// TestIDExeNeverConsultsAgent: with ~/.ssh/id_exe present, a whole sandbox
// life, the management calls and moat doctor's explanation never contact
// the SSH agent, although SSH_AUTH_SOCK points at a working one holding
// the registered key. The control: without id_exe the same calls log in
// through that agent, so the recorder does see an agent that is used.
func TestIDExeNeverConsultsAgent(t *testing.T) {
	srv := exedevtest.NewServer(t)
	ag := startRecordingAgent(t, registeredKey(t, srv))
	t.Setenv("SSH_AUTH_SOCK", ag.socket)

	life := func(t *testing.T, p *exedev.Provider) {
		t.Helper()
		if _, err := p.Whoami(t.Context()); err != nil {
			t.Fatalf("Whoami: %v", err)
		}
		h, err := p.Create(t.Context(), sandbox.CreateOptions{})
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		if r, err := h.Exec(t.Context(), "echo ok", sandbox.ExecOptions{}); err != nil || r.Stdout != "ok\n" {
			t.Errorf("Exec: %v %+v", err, r)
		}
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o600)
		if err := h.CopyIn(t.Context(), filepath.Join(dir, "f"), "f"); err != nil {
			t.Errorf("CopyIn: %v", err)
		}
		if err := h.CopyOut(t.Context(), "f", filepath.Join(dir, "g")); err != nil {
			t.Errorf("CopyOut: %v", err)
		}
		if _, err := p.List(t.Context()); err != nil {
			t.Errorf("List: %v", err)
		}
		if err := h.Close(t.Context()); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := p.Remove(t.Context(), "moat-gone"); err != nil {
			t.Errorf("Remove: %v", err)
		}
		assertNoVMs(t, srv)
	}

	t.Run("id_exe", func(t *testing.T) {
		home := newUserHome(t)
		// An ssh_config naming the agent and other keys must not bring the
		// agent back either.
		conf := "Host *\n  IdentityAgent " + ag.socket + "\n  IdentityFile ~/.ssh/other\n  ForwardAgent yes\n"
		os.WriteFile(filepath.Join(home, ".ssh", "config"), []byte(conf), 0o600)
		p := exedev.New(userConfig(t, srv, home, true))
		ex, err := sshx.Explain(t.Context(), p.LobbySSHConfig())
		if err != nil {
			t.Fatal(err)
		}
		if ex.Source != sshx.KeysPreferred || ex.Agent.Consulted || len(ex.Offered) != 1 ||
			ex.Offered[0].File != filepath.Join(home, ".ssh", "id_exe") || ex.Offered[0].ViaAgent {
			t.Errorf("Explain: source %q, agent %+v, offered %+v; want id_exe alone", ex.Source, ex.Agent, ex.Offered)
		}
		if len(ex.Agent.Keys) != 0 {
			t.Errorf("Explain lists the agent's keys %v: it asked the agent", ex.Agent.Keys)
		}
		if conns, calls := ag.seen(); conns != 0 {
			t.Errorf("sshx.Explain contacted the agent: %d connections, requests %v", conns, calls)
		}
		life(t, p)
		if conns, calls := ag.seen(); conns != 0 {
			t.Errorf("the agent was contacted with ~/.ssh/id_exe present: %d connections, requests %v", conns, calls)
		}
	})

	t.Run("control: no id_exe", func(t *testing.T) {
		conns0, calls0 := ag.seen()
		home := newUserHome(t)
		p := exedev.New(userConfig(t, srv, home, false))
		ex, err := sshx.Explain(t.Context(), p.LobbySSHConfig())
		if err != nil {
			t.Fatal(err)
		}
		if ex.Source != sshx.KeysDefault || !ex.Agent.Consulted || len(ex.Agent.Keys) != 1 ||
			len(ex.Offered) != 1 || !ex.Offered[0].ViaAgent {
			t.Errorf("Explain: source %q, agent %+v, offered %+v; want the agent's key", ex.Source, ex.Agent, ex.Offered)
		}
		life(t, p)
		conns, calls := ag.seen()
		if conns <= conns0 || calls["List"] <= calls0["List"] || calls["Sign"] <= calls0["Sign"] {
			t.Errorf("without id_exe the agent was not used: %d connections, %v", conns-conns0, calls)
		}
	})
}
