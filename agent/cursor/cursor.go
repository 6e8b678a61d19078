// Package cursor drives the Cursor CLI (cursor-agent, also installed as
// agent) in print mode with stream-json output.
//
// An invocation runs, in the sandbox's work directory:
//
//	PATH="$PATH:$HOME/.local/bin" cursor-agent --print --output-format stream-json --force --trust [--model M]
//
// with the prompt on stdin: in print mode cursor-agent reads a piped stdin
// as its prompt, so the prompt never goes on the command line. --force
// runs every tool without asking and --trust trusts the work directory,
// because the agent runs inside a sandbox. The PATH prefix finds a
// cursor-agent that Ensure installed into $HOME/.local/bin, which
// non-interactive shells usually lack.
//
// The Cursor CLI is not on npm. Ensure downloads the pinned version's
// package from Cursor's download server, the one Cursor's official
// installer (https://cursor.com/install) fetches the latest from, and
// links it where the installer does; with Version "latest" it runs the
// official installer itself. Either needs curl and tar in the sandbox and
// a way out to Cursor's servers.
package cursor

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/moatdev/moat/agent"
	"github.com/moatdev/moat/agent/internal/npmcli"
	"github.com/moatdev/moat/internal/shell"
	"github.com/moatdev/moat/sandbox"
)

// Version is the version of the Cursor CLI Ensure installs unless
// Config.Version says otherwise.
const Version = "2026.02.13-41ac335"

// DownloadBase is where Cursor serves its CLI packages: a version's
// package is <DownloadBase>/<version>/<os>/<arch>/agent-cli-package.tar.gz.
const DownloadBase = "https://downloads.cursor.com/lab"

// Installer is Cursor's official installer, which installs the latest
// version.
const Installer = "https://cursor.com/install"

// Config configures the Cursor agent. The zero value uses Cursor's
// default model and installs Version.
type Config struct {
	// Model is passed as --model (e.g. "composer-2", "sonnet-4.5",
	// "auto"); empty means Cursor's default.
	Model string

	// Version is the version Ensure installs (e.g. "2026.02.13-41ac335");
	// empty means Version, "latest" runs the official installer, which
	// installs whatever is newest.
	Version string

	// DownloadBase replaces DownloadBase, for a mirror; empty means
	// DownloadBase.
	DownloadBase string

	// Binary is the Cursor CLI command; empty means "cursor-agent". It may
	// be a path.
	Binary string

	// InstallCommand, when set, replaces the download that Ensure runs
	// when the CLI is missing. It runs with sh -c in the work directory,
	// with $HOME/.local/bin on PATH; afterwards Binary must be found on
	// PATH or in $HOME/.local/bin.
	InstallCommand string

	// InstallTimeout bounds the install Ensure runs when the CLI is
	// missing; 0 means npmcli.DefaultTimeout.
	InstallTimeout time.Duration
}

// Agent is the Cursor CLI. Create one with New.
type Agent struct {
	cfg Config
}

var _ agent.Agent = (*Agent)(nil)

// New returns a Cursor agent for cfg.
func New(cfg Config) *Agent {
	if cfg.Binary == "" {
		cfg.Binary = "cursor-agent"
	}
	if cfg.Version == "" {
		cfg.Version = Version
	}
	if cfg.DownloadBase == "" {
		cfg.DownloadBase = DownloadBase
	}
	cfg.DownloadBase = strings.TrimRight(cfg.DownloadBase, "/")
	return &Agent{cfg: cfg}
}

// Name returns "cursor".
func (a *Agent) Name() string { return "cursor" }

// CredentialEnv returns CURSOR_API_KEY.
func (a *Agent) CredentialEnv() []string { return []string{"CURSOR_API_KEY"} }

func (a *Agent) tool() npmcli.Tool {
	t := npmcli.Tool{Product: "Cursor CLI", Binary: a.cfg.Binary, Install: a.cfg.InstallCommand, Timeout: a.cfg.InstallTimeout}
	switch {
	case a.cfg.InstallCommand != "":
	case a.cfg.Version == "latest":
		t.Install, t.InstallName = a.officialInstall(), "Cursor's official installer, "+Installer
	default:
		t.Install, t.InstallName = a.download(), "a download of version "+a.cfg.Version+" from "+a.cfg.DownloadBase
	}
	return t
}

// need is a script prelude that fails, saying so, when the sandbox lacks
// one of the tools the install needs.
const need = `for tool in curl tar; do
	command -v "$tool" >/dev/null 2>&1 || { echo "moat: installing the Cursor CLI needs $tool, which the sandbox does not have: install it in the sandbox image, or use an image with cursor-agent already installed" >&2; exit 1; }
done
`

// download is the install script for a pinned version: it fetches the
// version's package for this system, unpacks it into
// $HOME/.local/share/cursor-agent/versions/<version> and links
// cursor-agent (and agent, when nothing has that name) into
// $HOME/.local/bin, as the official installer does.
func (a *Agent) download() string {
	return need + `v=` + shell.Quote(a.cfg.Version) + `
base=` + shell.Quote(a.cfg.DownloadBase) + `
case "$(uname -s)" in Linux) os=linux ;; Darwin) os=darwin ;; *) echo "moat: the Cursor CLI has no build for $(uname -s)" >&2; exit 1 ;; esac
case "$(uname -m)" in x86_64|amd64) arch=x64 ;; aarch64|arm64) arch=arm64 ;; *) echo "moat: the Cursor CLI has no build for $(uname -m)" >&2; exit 1 ;; esac
url="$base/$v/$os/$arch/agent-cli-package.tar.gz"
dir="$HOME/.local/share/cursor-agent/versions/$v"
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
echo "downloading $url"
if ! curl -fsSL --retry 2 -o "$tmp/package.tar.gz" "$url"; then
	echo "moat: could not fetch the Cursor CLI $v from $url: check that the sandbox can reach it (or set a mirror), and that the version exists" >&2
	exit 1
fi
mkdir -p "$tmp/unpacked" && tar -xzf "$tmp/package.tar.gz" --strip-components=1 -C "$tmp/unpacked" || { echo "moat: the Cursor CLI package from $url is not a gzipped tar" >&2; exit 1; }
[ -x "$tmp/unpacked/cursor-agent" ] || { echo "moat: the Cursor CLI package from $url has no cursor-agent" >&2; exit 1; }
rm -rf "$dir" && mkdir -p "$(dirname "$dir")" "$HOME/.local/bin" && mv "$tmp/unpacked" "$dir" || exit 1
ln -sf "$dir/cursor-agent" "$HOME/.local/bin/cursor-agent" || exit 1
[ -e "$HOME/.local/bin/agent" ] || ln -s "$dir/cursor-agent" "$HOME/.local/bin/agent"
echo "unpacked into $dir"
`
}

// officialInstall runs Cursor's installer, downloaded first so that a
// failed download fails the install (with "curl | bash", bash exits 0 on
// empty input).
func (a *Agent) officialInstall() string {
	return need + `t=$(mktemp) || exit 1
trap 'rm -f "$t"' EXIT
echo "downloading ` + Installer + `"
if ! curl -fsSL --retry 2 -o "$t" ` + shell.Quote(Installer) + `; then
	echo "moat: could not fetch Cursor's installer from ` + Installer + `: check that the sandbox can reach cursor.com" >&2
	exit 1
fi
bash "$t"
`
}

// Ensure finds the Cursor CLI in the sandbox (on PATH or in
// $HOME/.local/bin) and reports its version; when it is missing, Ensure
// installs it (see the package documentation), streaming what the install
// says to progress. The error says when the CLI cannot be fetched.
func (a *Agent) Ensure(ctx context.Context, h sandbox.Handle, progress func(line string)) error {
	if err := checkVersion(a.cfg.Version); err != nil {
		return err
	}
	return a.tool().Ensure(ctx, h, progress)
}

// checkVersion refuses a version that is not one name: it becomes a
// directory name under $HOME/.local/share/cursor-agent/versions, which
// the install replaces.
func checkVersion(v string) error {
	ok := v != "" && v[0] != '.' && v[0] != '-'
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("cursor: Version %q is not a Cursor CLI version: use one like %q, or \"latest\"", v, Version)
	}
	return nil
}

// Invocation returns the cursor-agent command for prompt; see the package
// documentation.
func (a *Agent) Invocation(prompt string) (agent.Invocation, error) {
	return npmcli.Invocation("cursor", a.cfg.Binary, "--print --output-format stream-json --force --trust", prompt,
		npmcli.Option{Field: "Model", Flag: "--model", Value: a.cfg.Model})
}

// NewParser returns a parser for cursor-agent's stream-json output.
func (a *Agent) NewParser() agent.Parser { return &Parser{} }
