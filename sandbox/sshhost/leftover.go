package sshhost

import (
	"context"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moatdev/moat/internal/sshhandle"
	"github.com/moatdev/moat/internal/sshx"
	"github.com/moatdev/moat/sandbox"
)

// A sandbox's record (sandbox.Record) is .<name>.json beside its
// directory (hidden, so that moat-* matches only the directories). The
// sandbox's commands run as the same user and could change it: it says
// where the sandbox came from, and decides nothing but whether gc takes
// the sandbox for one in use.
func recordPath(dir string) string { return path.Join(path.Dir(dir), "."+path.Base(dir)+".json") }

// writeRecordScript writes $MOAT_REC as the record of the sandbox
// directory $MOAT_DIR (absolute), for sshhandle.MakeDirAnd.
const writeRecordScript = `umask 077 && printf '%s' "$MOAT_REC" > "${MOAT_DIR%/*}/.${MOAT_DIR##*/}.json"`

// writeRecord writes rec beside the sandbox directory dir.
func writeRecord(ctx context.Context, client *sshx.Client, dir string, rec sandbox.Record) error {
	res, err := sshhandle.New(client, "/", nil, nil).Run(ctx, `umask 077 && printf '%s' "$MOAT_REC" > "$MOAT_PATH"`,
		sandbox.ExecOptions{Env: map[string]string{"MOAT_REC": string(rec.Marshal()), "MOAT_PATH": recordPath(dir)}})
	if err == nil && res.ExitCode != 0 {
		err = fmt.Errorf("exit %d: %s", res.ExitCode, strings.TrimSpace(res.Stderr))
	}
	if err != nil {
		return fmt.Errorf("writing the sandbox's record: %w", err)
	}
	return nil
}

// validName is the name Create gives a sandbox directory.
var validName = regexp.MustCompile(`^moat-[0-9a-f]{12}$`)

var _ sandbox.LeftoverFinder = (*Provider)(nil)

// Kind returns "sshhost".
func (p *Provider) Kind() string { return "sshhost" }

// leftoverScript lists the sandbox directories under $MOAT_DIR, one
// "moat-dir NAME MTIME RECORD" line each, after "moat-base ABSDIR".
const leftoverScript = `unset MOAT_SANDBOX_ID
case "$MOAT_DIR" in "~") MOAT_DIR=$HOME ;; "~/"*) MOAT_DIR=$HOME/${MOAT_DIR#"~/"} ;; /*) ;; *) MOAT_DIR=$HOME/$MOAT_DIR ;; esac
cd -- "$MOAT_DIR" 2>/dev/null || exit 0
echo "moat-base $(pwd -P)"
for d in moat-*; do
	[ -d "$d" ] && [ ! -L "$d" ] || continue
	rec=
	[ -f ".$d.json" ] && rec=$(head -c 4096 ".$d.json" | tr -d '\n\t')
	printf 'moat-dir\t%s\t%s\t%s\n' "$d" "$(date -r "$d" +%s 2>/dev/null || echo 0)" "$rec"
done
exit 0`

// countScript prints, from /proc, one "moat-procs COUNT NAME" line per
// sandbox mark that running processes of the login user carry; nothing
// where there is no /proc.
const countScript = `unset MOAT_SANDBOX_ID
[ -d /proc/self ] || exit 0
for e in /proc/[0-9]*/environ; do
	tr '\0' '\n' < "$e" 2>/dev/null | grep -m1 '^MOAT_SANDBOX_ID=moat-'
done | sort | uniq -c | while read -r n kv; do echo "moat-procs $n ${kv#MOAT_SANDBOX_ID=}"; done
exit 0`

// Leftovers implements sandbox.LeftoverFinder: the sandbox directories
// under Config.WorkDir on the host, in one command over one connection.
func (p *Provider) Leftovers(ctx context.Context) ([]sandbox.Leftover, error) {
	client, release, err := p.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	res, err := sshhandle.New(client, "/", nil, nil).Run(ctx, leftoverScript,
		sandbox.ExecOptions{Env: map[string]string{"MOAT_DIR": p.base()}})
	if err == nil && res.ExitCode != 0 {
		err = fmt.Errorf("exit %d: %s", res.ExitCode, strings.TrimSpace(res.Stderr))
	}
	if err != nil {
		return nil, fmt.Errorf("sshhost %s: listing sandboxes: %w", client.Addr(), err)
	}
	var (
		base string
		out  []sandbox.Leftover
	)
	for _, line := range strings.Split(res.Stdout, "\n") {
		switch f := strings.Split(line, "\t"); {
		case strings.HasPrefix(line, "moat-base "):
			base = strings.TrimPrefix(line, "moat-base ")
		case f[0] == "moat-dir" && len(f) == 4 && validName.MatchString(f[1]):
			l := sandbox.Leftover{Kind: "sshhost", Name: f[1], Processes: -1}
			if f[3] != "" {
				if r, err := sandbox.ParseRecord([]byte(f[3])); err == nil {
					l.Record = r
				}
			}
			if l.Created.IsZero() {
				if s, err := strconv.ParseInt(f[2], 10, 64); err == nil && s > 0 {
					l.Created = time.Unix(s, 0).UTC()
				}
			}
			l.WorkDir = path.Join(base, f[1])
			l.Where = client.Addr() + ":" + l.WorkDir
			if l.Owner.PID != 0 {
				l.InUse = !l.Owner.Gone()
			}
			out = append(out, l)
		}
	}
	slices.SortFunc(out, func(a, b sandbox.Leftover) int { return a.Created.Compare(b.Created) })
	return out, nil
}

var _ sandbox.ProcessCounter = (*Provider)(nil)

// CountProcesses implements sandbox.ProcessCounter, in one command on the
// host that reads every process's environment there (a few forks per
// process: the reason Leftovers leaves it out). On an error the counts
// stay unknown.
func (p *Provider) CountProcesses(ctx context.Context, ls []sandbox.Leftover) {
	if len(ls) == 0 {
		return
	}
	client, release, err := p.connect(ctx)
	if err != nil {
		return
	}
	defer release()
	res, err := sshhandle.New(client, "/", nil, nil).Run(ctx, countScript, sandbox.ExecOptions{})
	if err != nil || res.ExitCode != 0 {
		return
	}
	procs := map[string]int{}
	for _, line := range strings.Split(res.Stdout, "\n") {
		var n int
		var name string
		if _, err := fmt.Sscan(strings.TrimPrefix(line, "moat-procs "), &n, &name); err == nil && strings.HasPrefix(line, "moat-procs ") {
			procs[name] = n
		}
	}
	for i := range ls {
		if ls[i].Kind == "sshhost" {
			ls[i].Processes = procs[ls[i].Name]
		}
	}
}

// Hold keeps the provider's connection open until release, so that what
// runs meanwhile (listing leftovers before a run's Create) shares one
// connection. It does not dial.
func (p *Provider) Hold() (release func(), err error) {
	if _, err := p.conn.Acquire(); err != nil {
		return nil, fmt.Errorf("sshhost: %w", err)
	}
	var once sync.Once
	return func() { once.Do(p.conn.Release) }, nil
}

func (p *Provider) base() string {
	if p.cfg.WorkDir != "" {
		return p.cfg.WorkDir
	}
	return "~/.moat/sandboxes"
}

// connect takes a reference on the provider's connection and dials it.
func (p *Provider) connect(ctx context.Context) (*sshx.Client, func(), error) {
	if p.cfg.Addr == "" {
		return nil, nil, fmt.Errorf("sshhost: no host given: set Config.Addr to a host name, host:port or ~/.ssh/config alias")
	}
	client, err := p.conn.Acquire()
	if err != nil {
		return nil, nil, fmt.Errorf("sshhost: %w", err)
	}
	if err := client.Connect(ctx); err != nil {
		p.conn.Release()
		return nil, nil, fmt.Errorf("sshhost: %w", err)
	}
	return client, p.conn.Release, nil
}

// leftoverDir checks that l names a sandbox directory as Leftovers found
// it: a name Create gives, in an absolute directory.
func leftoverDir(l sandbox.Leftover) (string, error) {
	if l.Kind != "sshhost" || !validName.MatchString(l.Name) || !path.IsAbs(l.WorkDir) || path.Base(l.WorkDir) != l.Name {
		return "", fmt.Errorf("sshhost: %q is not an SSH-host sandbox moat listed", l.Name)
	}
	return path.Clean(l.WorkDir), nil
}

// OpenLeftover implements sandbox.LeftoverFinder: a handle whose commands
// carry the sandbox's own mark. Its Close releases the connection.
func (p *Provider) OpenLeftover(ctx context.Context, l sandbox.Leftover) (sandbox.Handle, error) {
	dir, err := leftoverDir(l)
	if err != nil {
		return nil, err
	}
	client, release, err := p.connect(ctx)
	if err != nil {
		return nil, err
	}
	return sshhandle.NewMarked(client, dir, l.Name, nil, func(context.Context, *sshhandle.Handle) error {
		release()
		return nil
	}), nil
}

// RemoveLeftover implements sandbox.LeftoverFinder: as Close would, it
// kills the processes that carry the sandbox's mark and removes its
// directory and record.
func (p *Provider) RemoveLeftover(ctx context.Context, l sandbox.Leftover) error {
	dir, err := leftoverDir(l)
	if err != nil {
		return err
	}
	client, release, err := p.connect(ctx)
	if err != nil {
		return err
	}
	defer release()
	return removeSandbox(ctx, client, sshhandle.NewMarked(client, dir, l.Name, nil, nil), dir)
}
