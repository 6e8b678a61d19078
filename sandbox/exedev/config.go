// Package exedev makes sandboxes that are exe.dev microVMs: a fresh Linux VM
// per sandbox, created with the lobby's `new` command over SSH and deleted
// with `rm` when the sandbox is closed.
//
// Everything goes over native SSH (golang.org/x/crypto/ssh): one connection
// to the lobby, one per VM, a new session per command. No ssh or scp binary
// is needed.
package exedev

import (
	"log/slog"
	"os"
	"time"

	"github.com/moatdev/moat/internal/sshx"
)

// DefaultLobby is the address of exe.dev's lobby.
const DefaultLobby = "exe.dev:22"

// Tag is carried by every VM moat creates, so leftovers can be found and
// removed (moat sandbox gc).
const Tag = "moat"

// Config says how to reach exe.dev and what VMs to make. The zero value
// talks to the real exe.dev with the user's usual SSH setup.
type Config struct {
	// Lobby is the lobby's host[:port]; default DefaultLobby.
	Lobby string
	// User is the SSH user for the lobby; "" uses ~/.ssh/config or the local
	// user. It must never be a VM name (exe.dev would route to that VM).
	User string
	// IdentityFile is the private key for the lobby and the VMs. Default:
	// ~/.ssh/id_exe when it exists (used alone, the agent not consulted),
	// else ~/.ssh/config's IdentityFile for the host, else the SSH agent and
	// the default ~/.ssh/id_* keys.
	IdentityFile string
	// KnownHostsFile checks the lobby's host key (accept-new); default
	// ~/.ssh/known_hosts. VMs are checked against the lobby's key, which
	// every exe.dev VM presents through exe.dev's SSH proxy.
	KnownHostsFile string

	// Tags are added to every VM, besides Tag.
	Tags []string
	// Image is the container image for `new --image`; "" is exe.dev's
	// default (exeuntu).
	Image string
	// CPU, Memory and Disk are passed to `new` when set (e.g. 2, "4GB",
	// "20GB").
	CPU          int
	Memory, Disk string
	// Env is set for every command in the VM, like CreateOptions.Env (which
	// wins). It travels over SSH stdin, never on a command line; in
	// particular it is not passed with `new --env`, which would store it in
	// the VM's metadata.
	Env map[string]string
	// WorkDir is the repository directory in the VM; default
	// "$HOME/workspace" of the VM's login user, discovered at Create.
	WorkDir string
	// ReadyTimeout bounds the wait for a new VM to accept SSH; default 90s.
	ReadyTimeout time.Duration

	// SSH holds further transport settings (ssh_config file, agent socket,
	// home directory, connect timeout, dial limiter). Its Host, User,
	// IdentityFile and KnownHostsFile are set from the fields above.
	SSH sshx.Config
	// Logger receives debug logs; nil discards them. Secrets never reach it.
	Logger *slog.Logger
}

// ConfigFromEnv returns a Config from the environment, for commands and the
// live test: MOAT_EXEDEV_LOBBY (host:port), MOAT_EXEDEV_KEY (private key
// file), MOAT_EXEDEV_KNOWN_HOSTS, MOAT_EXEDEV_IMAGE. Unset variables leave
// the defaults.
func ConfigFromEnv() Config {
	return Config{
		Lobby:          os.Getenv("MOAT_EXEDEV_LOBBY"),
		IdentityFile:   os.Getenv("MOAT_EXEDEV_KEY"),
		KnownHostsFile: os.Getenv("MOAT_EXEDEV_KNOWN_HOSTS"),
		Image:          os.Getenv("MOAT_EXEDEV_IMAGE"),
	}
}
