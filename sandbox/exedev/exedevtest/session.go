package exedevtest

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"

	"github.com/moatdev/moat/internal/execout"
	"github.com/moatdev/moat/internal/sshhandle"
)

// session is one SSH "session" channel, on the lobby (vm == nil) or on a VM.
type session struct {
	s    *Server
	conn net.Conn
	sc   *ssh.ServerConn
	vm   *vm
	ch   ssh.Channel

	env      []string
	term     string
	pty      bool
	signals  chan string   // signal names from "signal" requests
	abort    chan struct{} // closed when the client closed the channel (or the connection died)
	exitOnce sync.Once     // the exit status is sent once
}

// serveLobbyConn serves one lobby connection.
func (s *Server) serveLobbyConn(c net.Conn) {
	cfg := s.serverConfig(func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
		if s.opts.unregistered || s.isClientKey(key) {
			return &ssh.Permissions{}, nil
		}
		return nil, errors.New("unknown public key")
	})
	sc, chans, reqs, err := handshake(c, cfg)
	if err != nil {
		s.log.Debug("exedevtest: lobby handshake failed", "err", err)
		return
	}
	defer sc.Close()
	go s.discardRequests(reqs)
	s.serveChannels(c, sc, chans, nil)
}

// serveVMConn serves one connection to a VM. fixed is the VM the port
// belongs to; nil means the shared legacy port, which routes on the SSH
// username (vm+<name>).
func (s *Server) serveVMConn(c net.Conn, fixed *vm) {
	var routed *vm
	cfg := s.serverConfig(func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
		if !s.isClientKey(key) {
			return nil, errors.New("unknown public key")
		}
		if fixed != nil {
			routed = fixed
			return &ssh.Permissions{}, nil
		}
		user := meta.User()
		name, ok := strings.CutPrefix(user, "vm+")
		if !ok && !s.opts.oldJSON {
			return nil, errors.New("no VM for this user")
		}
		v := s.lookup(name)
		if v == nil {
			return nil, errors.New("no VM for this user")
		}
		if !v.ready() {
			resetConn(c)
			return nil, errors.New("VM not ready")
		}
		routed = v
		return &ssh.Permissions{}, nil
	})
	sc, chans, reqs, err := handshake(c, cfg)
	if err != nil {
		s.log.Debug("exedevtest: VM handshake failed", "err", err)
		return
	}
	defer sc.Close()
	if fixed == nil && !s.attach(c, routed) {
		return
	}
	go s.discardRequests(reqs)
	s.serveChannels(c, sc, chans, routed)
}

// attach records that connection c belongs to v (legacy routing learns it
// only at authentication).
func (s *Server) attach(c net.Conn, v *vm) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[c]; !ok || v.isDeleted() {
		return false
	}
	s.conns[c] = v
	return true
}

func (s *Server) lookup(name string) *vm {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.vms[name]
}

func (s *Server) serveChannels(c net.Conn, sc *ssh.ServerConn, chans <-chan ssh.NewChannel, v *vm) {
	for nc := range chans {
		s.countRequest("channel:" + nc.ChannelType())
		switch {
		case nc.ChannelType() == "session":
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serveSession(c, sc, nc, v)
			}()
		case nc.ChannelType() == "direct-tcpip" && v != nil:
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				directTCPIP(nc)
			}()
		default:
			nc.Reject(ssh.UnknownChannelType, "unsupported channel type")
		}
	}
}

// directTCPIP forwards a port-forwarding channel to host:port (VMs share
// the host's network).
func directTCPIP(nc ssh.NewChannel) {
	var p struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &p); err != nil {
		nc.Reject(ssh.ConnectionFailed, "bad request")
		return
	}
	conn, err := net.Dial("tcp", net.JoinHostPort(p.Host, strconv.Itoa(int(p.Port))))
	if err != nil {
		nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		conn.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		io.Copy(conn, ch)
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
	}()
	go func() {
		defer wg.Done()
		io.Copy(ch, conn)
		ch.CloseWrite()
	}()
	wg.Wait()
	ch.Close()
	conn.Close()
}

func (s *Server) serveSession(c net.Conn, sc *ssh.ServerConn, nc ssh.NewChannel, v *vm) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	ss := &session{
		s: s, conn: c, sc: sc, vm: v, ch: ch,
		signals: make(chan string, 16),
		abort:   make(chan struct{}),
	}
	started := false
	start := func(f func()) {
		started = true
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			f()
		}()
	}
	for req := range reqs {
		s.countRequest(req.Type)
		switch req.Type {
		case "env":
			var kv struct{ Name, Value string }
			if ssh.Unmarshal(req.Payload, &kv) != nil || kv.Name == "" || strings.ContainsAny(kv.Name, "=\x00") {
				req.Reply(false, nil)
				continue
			}
			ss.env = append(ss.env, kv.Name+"="+kv.Value)
			req.Reply(true, nil)
		case "pty-req":
			var p struct {
				Term             string
				Cols, Rows, W, H uint32
				Modes            string
			}
			if ssh.Unmarshal(req.Payload, &p) == nil {
				ss.term = p.Term
			}
			ss.pty = true
			req.Reply(true, nil)
		case "window-change":
			req.Reply(true, nil)
		case "signal":
			var p struct{ Signal string }
			if ssh.Unmarshal(req.Payload, &p) == nil {
				select {
				case ss.signals <- p.Signal:
				default:
				}
			}
			req.Reply(true, nil)
		case "exec":
			var p struct{ Command string }
			if started || ssh.Unmarshal(req.Payload, &p) != nil {
				req.Reply(false, nil)
				continue
			}
			req.Reply(true, nil)
			if v == nil {
				start(func() { ss.lobbyExec(p.Command) })
			} else {
				start(func() { ss.vmExec(p.Command) })
			}
		case "shell":
			if started {
				req.Reply(false, nil)
				continue
			}
			req.Reply(true, nil)
			if v == nil {
				start(ss.lobbyShell)
			} else {
				start(ss.vmShell)
			}
		case "subsystem":
			var p struct{ Name string }
			if started || ssh.Unmarshal(req.Payload, &p) != nil || p.Name != "sftp" {
				req.Reply(false, nil)
				continue
			}
			req.Reply(true, nil)
			if v == nil {
				start(ss.lobbySFTP)
			} else {
				start(ss.vmSFTP)
			}
		default:
			req.Reply(false, nil)
		}
	}
	close(ss.abort)
	ch.Close()
}

func (ss *session) aborted() bool {
	select {
	case <-ss.abort:
		return true
	default:
		return false
	}
}

// finish reports the exit status (or the killing signal), then EOF, then
// closes the channel.
func (ss *session) finish(e exitInfo) {
	if !ss.aborted() {
		ss.reportExit(e)
		ss.ch.CloseWrite()
	}
	ss.ch.Close()
}

// reportExit sends the exit status (or the killing signal), once.
func (ss *session) reportExit(e exitInfo) {
	ss.exitOnce.Do(func() {
		if e.signal != "" {
			ss.ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
				Signal     string
				CoreDumped bool
				Error      string
				Lang       string
			}{e.signal, false, "", ""}))
		} else {
			ss.ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(e.code)}))
		}
	})
}

// --- lobby sessions ---

func (ss *session) lobbyExec(line string) {
	s := ss.s
	call := LobbyCall{User: ss.sc.User(), Command: line}
	outBuf, errBuf := &execout.Capped{N: 64 << 10}, &execout.Capped{N: 64 << 10}
	c := &cmdCtx{
		s:      s,
		ss:     ss,
		user:   ss.sc.User(),
		stdin:  ss.ch,
		stdout: io.MultiWriter(ss.ch, outBuf),
		stderr: io.MultiWriter(ss.ch.Stderr(), errBuf),
	}
	code := 1
	if s.opts.unregistered {
		io.WriteString(c.errw(), msgRegistration)
	} else if words, err := splitWords(line); err != nil {
		c.json = strings.Contains(line, "-json")
		code = c.fail("invalid command syntax: " + err.Error())
	} else {
		call.Args = words
		code = s.dispatch(c, words)
	}
	call.Stdout, call.Stderr, call.ExitCode = outBuf.String(), errBuf.String(), code
	s.mu.Lock()
	s.transcript = append(s.transcript, call)
	s.mu.Unlock()
	ss.finish(exitInfo{code: code})
}

func (ss *session) lobbyShell() {
	eol := "\n"
	if ss.pty {
		eol = "\r\n"
	}
	msg := "This exe.dev emulator has no interactive REPL." + eol +
		"Run one command per connection, e.g.: ssh -p " + strconv.Itoa(ss.s.LobbyPort()) + " 127.0.0.1 help" + eol
	if ss.s.opts.unregistered {
		msg = msgRegistration
	}
	io.WriteString(ss.ch, msg)
	ss.finish(exitInfo{code: 1})
}

func (ss *session) lobbySFTP() {
	io.WriteString(ss.ch.Stderr(), msgNoSFTP)
	ss.ch.CloseWrite()
	ss.ch.Close()
}

// --- VM sessions ---

func (ss *session) vmEnv() []string {
	env := ss.vm.baseEnv()
	if ss.term != "" {
		env = append(env, "TERM="+ss.term)
	}
	return append(env, ss.env...)
}

func (ss *session) vmExec(command string) {
	s := ss.s
	var first func()
	s.mu.Lock()
	s.execCount++
	if s.opts.dropMidExec > 0 && s.execCount == s.opts.dropMidExec {
		first = func() {
			s.log.Info("exedevtest: dropping connection mid-exec", "vm", ss.vm.name, "command", command)
			ss.conn.Close()
		}
	}
	s.mu.Unlock()
	var stdin io.Reader = ss.ch
	loseStatus := false
	if s.opts.dropExec != nil || s.opts.loseStatus != nil {
		script := command
		switch {
		case sshhandle.IsWrapper(command):
			// moat's exec: the script is the first line of stdin (two
			// lines for Sudo).
			br := bufio.NewReader(ss.ch)
			raw, readable := sshhandle.ReadScript(br)
			script = readable
			stdin = io.MultiReader(bytes.NewReader(raw), br)
		case strings.Contains(command, "base64 -d"):
			// moat's earlier wrapper: the script base64-encoded on the
			// first line of stdin.
			br := bufio.NewReader(ss.ch)
			line, _ := br.ReadString('\n')
			if dec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(line)); err == nil {
				script = string(dec)
			}
			stdin = io.MultiReader(strings.NewReader(line), br)
		}
		s.mu.Lock()
		drop := s.opts.dropExec != nil && s.dropsDone < s.opts.dropExecN && s.opts.dropExec(script)
		if drop {
			s.dropsDone++
		}
		loseStatus = !drop && s.opts.loseStatus != nil && s.lostDone < s.opts.loseStatusN && s.opts.loseStatus(script)
		if loseStatus {
			s.lostDone++
		}
		s.mu.Unlock()
		if drop {
			s.log.Info("exedevtest: dropping the connection of a matching exec", "vm", ss.vm.name)
			ss.conn.Close()
			return
		}
	}
	if loseStatus {
		e, err := ss.vm.run(runSpec{argv: []string{"/bin/sh", "-c", command}, env: ss.vmEnv(), stdin: stdin,
			stdout: ss.ch, stderr: ss.ch.Stderr(), signals: ss.signals, abort: ss.abort})
		s.log.Info("exedevtest: the command ran; dropping the connection instead of its exit status", "vm", ss.vm.name, "code", e.code, "err", err)
		ss.conn.Close()
		return
	}
	ss.runOnVM([]string{"/bin/sh", "-c", command}, stdin, first)
}

func (ss *session) vmShell() {
	argv := []string{"/bin/sh"}
	if ss.pty {
		argv = append(argv, "-i")
	}
	ss.runOnVM(argv, ss.ch, nil)
}

func (ss *session) runOnVM(argv []string, stdin io.Reader, first func()) {
	e, err := ss.vm.run(runSpec{
		argv:        argv,
		env:         ss.vmEnv(),
		stdin:       stdin,
		stdout:      ss.ch,
		stderr:      ss.ch.Stderr(),
		signals:     ss.signals,
		abort:       ss.abort,
		firstOutput: first,
		exited: func(e exitInfo) {
			if !ss.aborted() {
				ss.reportExit(e)
			}
		},
	})
	if err != nil {
		io.WriteString(ss.ch.Stderr(), "exedevtest: "+err.Error()+"\n")
		e = exitInfo{code: 255}
	}
	ss.finish(e)
}

func (ss *session) vmSFTP() {
	ss.vm.serveSFTP(ss.ch)
	ss.ch.Close()
}
