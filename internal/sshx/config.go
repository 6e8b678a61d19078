// Package sshx is the SSH client every remote sandbox provider uses: it
// resolves ~/.ssh/config, picks keys the way exe.dev users expect, checks host
// keys against known_hosts (accept-new), keeps one connection per destination
// and opens a new session per command, redials dead connections, and
// rate-limits new connections to a host.
package sshx

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kevinburke/ssh_config"
	"golang.org/x/crypto/ssh"
)

// Config says how to reach one SSH destination. The zero value of every
// field means "what OpenSSH would do".
type Config struct {
	// Host is the destination as a user types it: a host name, an alias from
	// ~/.ssh/config, "host:port" or "[v6addr]:port", optionally preceded by
	// "user@".
	Host string
	// Port overrides the port; 0 means from Host, ~/.ssh/config, else 22.
	Port int
	// User is the login name; "" means from Host, ~/.ssh/config, else the
	// local user.
	User string
	// IdentityFile is a private key to use alone (as IdentitiesOnly=yes).
	IdentityFile string
	// PreferredIdentityFile, when it exists and this Config gives no
	// IdentityFile, is used alone and the agent is not consulted, whatever
	// ~/.ssh/config says. exe.dev providers set it to ~/.ssh/id_exe.
	PreferredIdentityFile string
	// KnownHostsFile is checked with accept-new semantics; "" means
	// UserKnownHostsFile from ~/.ssh/config, else ~/.ssh/known_hosts (and
	// /etc/ssh/ssh_known_hosts is read too). Ignored when HostKeyCallback is
	// set.
	KnownHostsFile string
	// HostKeyCallback, when set, replaces known_hosts checking (exe.dev VMs
	// are pinned to the lobby's key).
	HostKeyCallback ssh.HostKeyCallback
	// HostKeys, with HostKeyCallback, are the keys it accepts: the
	// handshake asks the server for those key types only, so a server with
	// several host keys presents the expected one. (exe.dev VMs are pinned
	// to the lobby's key.)
	HostKeys []ssh.PublicKey
	// SSHConfigFile is the ssh_config to read; "" means ~/.ssh/config,
	// "none" reads none.
	SSHConfigFile string
	// HomeDir is where ~ points; "" means the user's home directory.
	HomeDir string
	// AgentSocket is the SSH agent socket; "" means IdentityAgent from
	// ~/.ssh/config, else $SSH_AUTH_SOCK; "none" disables the agent.
	AgentSocket string
	// ConnectTimeout bounds one dial plus handshake; 0 means ConnectTimeout
	// from ~/.ssh/config, else 15s.
	ConnectTimeout time.Duration
	// KeepaliveInterval is the time between keepalives; 0 means 15s, <0 off.
	// Three missed keepalives close the connection.
	KeepaliveInterval time.Duration
	// Limiter rate-limits new connections; nil means a process-wide limiter
	// per host:port (DefaultDialLimiter).
	Limiter *DialLimiter
	// Logger receives debug logs; nil discards them. Never given secrets.
	Logger *slog.Logger
}

const (
	defaultConnectTimeout = 15 * time.Second
	defaultKeepalive      = 15 * time.Second
	defaultPort           = 22
)

// resolved is a Config with ssh_config applied and every default filled in.
type resolved struct {
	alias    string // the name the user gave, matched against ssh_config
	hostname string // what is dialled
	port     int
	user     string
	addr     string // hostname:port
	dest     string // user@addr, for messages

	home           string
	knownHosts     string   // written on accept-new
	knownHostsRead []string // also read (global file)
	hostKeyCB      ssh.HostKeyCallback
	hostKeyAlgos   []string
	agentSocket    string // "" when no agent
	noAgent        string // why agentSocket is ""
	keys           keyPlan

	connectTimeout time.Duration
	keepalive      time.Duration
	limiter        *DialLimiter
	log            *slog.Logger
}

// sshConfig is the part of ~/.ssh/config that applies to one alias.
type sshConfig struct {
	cfg  *ssh_config.Config
	file string
}

func (s *sshConfig) get(alias, key string) string {
	if s == nil || s.cfg == nil {
		return ""
	}
	v, err := s.cfg.Get(alias, key)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(v)
}

func (s *sshConfig) getAll(alias, key string) []string {
	if s == nil || s.cfg == nil {
		return nil
	}
	vs, err := s.cfg.GetAll(alias, key)
	if err != nil {
		return nil
	}
	return vs
}

func loadSSHConfig(path string, log *slog.Logger) *sshConfig {
	f, err := os.Open(path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			log.Warn("ssh: cannot read ssh config; ignoring it", "file", path, "err", err)
		}
		return nil
	}
	defer f.Close()
	cfg, err := ssh_config.Decode(f)
	if err != nil {
		// Configs using what the parser lacks (Match exec, …) must not lock
		// the user out: go on as if there were none, and say so.
		log.Warn("ssh: cannot parse ssh config; ignoring it", "file", path, "err", err)
		return nil
	}
	return &sshConfig{cfg: cfg, file: path}
}

// splitDest splits "user@host:port", "host", "[v6]:port" or a bare IPv6
// address into its parts; port is 0 when absent.
func splitDest(dest string) (userName, host string, port int, err error) {
	if i := strings.LastIndexByte(dest, '@'); i >= 0 {
		userName, dest = dest[:i], dest[i+1:]
	}
	host = dest
	switch {
	case strings.HasPrefix(dest, "["):
		if strings.HasSuffix(dest, "]") {
			host = dest[1 : len(dest)-1]
			break
		}
		h, p, err := net.SplitHostPort(dest)
		if err != nil {
			return "", "", 0, err
		}
		host = h
		if port, err = parsePort(p); err != nil {
			return "", "", 0, err
		}
	case strings.Count(dest, ":") == 1:
		h, p, err := net.SplitHostPort(dest)
		if err != nil {
			return "", "", 0, err
		}
		host = h
		if port, err = parsePort(p); err != nil {
			return "", "", 0, err
		}
	}
	if host == "" {
		return "", "", 0, errors.New("no host name")
	}
	return userName, host, port, nil
}

func parsePort(p string) (int, error) {
	n, err := strconv.Atoi(p)
	if err != nil || n <= 0 || n > 65535 {
		return 0, fmt.Errorf("bad port %q", p)
	}
	return n, nil
}

func localUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		name := u.Username
		if i := strings.LastIndexByte(name, '\\'); i >= 0 { // DOMAIN\user on Windows
			name = name[i+1:]
		}
		return name
	}
	for _, v := range []string{"USER", "USERNAME", "LOGNAME"} {
		if s := os.Getenv(v); s != "" {
			return s
		}
	}
	return ""
}

// expandPath expands ~ and the ssh_config tokens %d (home), %u (local user),
// %h (remote host), %r (remote user), %p (port) and %%.
func expandPath(p, home string, r *resolved) string {
	if p == "~" {
		p = home
	} else if strings.HasPrefix(p, "~/") || strings.HasPrefix(p, `~\`) {
		p = filepath.Join(home, p[2:])
	}
	if !strings.Contains(p, "%") {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] != '%' || i+1 == len(p) {
			b.WriteByte(p[i])
			continue
		}
		i++
		switch p[i] {
		case '%':
			b.WriteByte('%')
		case 'd':
			b.WriteString(home)
		case 'u':
			b.WriteString(localUser())
		case 'h':
			if r != nil {
				b.WriteString(r.hostname)
			}
		case 'r':
			if r != nil {
				b.WriteString(r.user)
			}
		case 'p':
			if r != nil {
				b.WriteString(strconv.Itoa(r.port))
			}
		default:
			b.WriteByte('%')
			b.WriteByte(p[i])
		}
	}
	return b.String()
}

// resolve applies ~/.ssh/config and the defaults to cfg.
func resolve(cfg Config) (*resolved, error) {
	r := &resolved{log: cfg.Logger}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Host == "" {
		return nil, errors.New("sshx: Config.Host is empty")
	}
	destUser, host, destPort, err := splitDest(cfg.Host)
	if err != nil {
		return nil, fmt.Errorf("sshx: bad host %q: %v", cfg.Host, err)
	}
	r.alias = host

	r.home = cfg.HomeDir
	if r.home == "" {
		if h, err := os.UserHomeDir(); err == nil {
			r.home = h
		}
	}

	var sc *sshConfig
	switch cfg.SSHConfigFile {
	case "none":
	case "":
		if r.home != "" {
			sc = loadSSHConfig(filepath.Join(r.home, ".ssh", "config"), r.log)
		}
	default:
		sc = loadSSHConfig(expandPath(cfg.SSHConfigFile, r.home, nil), r.log)
	}

	r.hostname = host
	if hn := sc.get(host, "HostName"); hn != "" {
		r.hostname = strings.ReplaceAll(strings.ReplaceAll(strings.ReplaceAll(hn, "%%", "\x00"), "%h", host), "\x00", "%")
	}

	switch {
	case cfg.Port != 0:
		r.port = cfg.Port
	case destPort != 0:
		r.port = destPort
	default:
		r.port = defaultPort
		if p := sc.get(host, "Port"); p != "" {
			if r.port, err = parsePort(p); err != nil {
				return nil, fmt.Errorf("sshx: %s: Port for %s: %v", sc.file, host, err)
			}
		}
	}

	switch {
	case cfg.User != "":
		r.user = cfg.User
	case destUser != "":
		r.user = destUser
	default:
		r.user = sc.get(host, "User")
		if r.user == "" {
			r.user = localUser()
		}
	}
	r.addr = net.JoinHostPort(r.hostname, strconv.Itoa(r.port))
	r.dest = r.user + "@" + r.addr

	// Agent.
	switch {
	case cfg.AgentSocket == "none":
		r.noAgent = "the SSH agent is not used (AgentSocket none)"
	case cfg.AgentSocket != "":
		r.agentSocket = expandPath(cfg.AgentSocket, r.home, r)
	default:
		r.agentSocket = os.Getenv("SSH_AUTH_SOCK")
		if ia := sc.get(host, "IdentityAgent"); ia != "" {
			switch ia {
			case "none":
				r.agentSocket = ""
				r.noAgent = "the SSH agent is not used (IdentityAgent none in " + sc.file + ")"
			case "SSH_AUTH_SOCK":
			default:
				if strings.HasPrefix(ia, "$") {
					r.agentSocket = os.Getenv(ia[1:])
				} else {
					r.agentSocket = expandPath(strings.Trim(ia, `"`), r.home, r)
				}
			}
		}
	}

	// Host keys.
	r.hostKeyCB = cfg.HostKeyCallback
	for _, k := range cfg.HostKeys {
		r.hostKeyAlgos = append(r.hostKeyAlgos, AlgorithmsForKey(k)...)
	}
	switch {
	case cfg.KnownHostsFile != "":
		r.knownHosts = expandPath(cfg.KnownHostsFile, r.home, r)
	default:
		if f := strings.Fields(sc.get(host, "UserKnownHostsFile")); len(f) > 0 {
			r.knownHosts = expandPath(f[0], r.home, r)
			for _, x := range f[1:] {
				r.knownHostsRead = append(r.knownHostsRead, expandPath(x, r.home, r))
			}
		} else {
			r.knownHosts = filepath.Join(r.home, ".ssh", "known_hosts")
		}
		r.knownHostsRead = append(r.knownHostsRead, "/etc/ssh/ssh_known_hosts")
	}

	r.connectTimeout = cfg.ConnectTimeout
	if r.connectTimeout <= 0 {
		r.connectTimeout = defaultConnectTimeout
		if s := sc.get(host, "ConnectTimeout"); s != "" {
			if n, err := strconv.Atoi(s); err == nil && n > 0 {
				r.connectTimeout = time.Duration(n) * time.Second
			}
		}
	}
	r.keepalive = cfg.KeepaliveInterval
	if r.keepalive == 0 {
		r.keepalive = defaultKeepalive
	}
	if r.agentSocket == "" && r.noAgent == "" {
		r.noAgent = "no SSH agent is running (SSH_AUTH_SOCK is not set)"
	}
	r.limiter = cfg.Limiter
	if r.limiter == nil {
		r.limiter = DefaultDialLimiter(r.addr)
	}

	plan, err := planKeys(cfg, sc, r)
	if err != nil {
		return nil, err
	}
	r.keys = plan
	return r, nil
}
