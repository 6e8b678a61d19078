package gitsync

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/moatdev/moat/sandbox"
)

// Pending is what a sandbox repository holds, for telling whether the
// host has all of it.
type Pending struct {
	// Repo is set when WorkDir holds a git repository.
	Repo bool
	// Head is its HEAD commit; "" when none is checked out.
	Head string
	// Base is SyncBaseRef: a commit the host had at the last sync; "" when
	// missing.
	Base string
	// Ahead counts the commits in Head beyond Base (all of Head's history
	// when Base is missing).
	Ahead int
	// Dirty is set when changes or untracked files git does not ignore
	// are left in the tree.
	Dirty bool
}

// Unsynced reports whether there is anything beyond Base to bring home.
// The host may have it anyway (when moat was killed after a sync out, say):
// see whether it has Head.
func (p Pending) Unsynced() bool { return p.Ahead > 0 || p.Dirty }

const pendingScript = gitFunc + `
[ -e .git ] || { echo "moat-pending norepo"; exit 0; }
head=$(g rev-parse -q --verify 'HEAD^{commit}')
base=$(g rev-parse -q --verify '` + SyncBaseRef + `^{commit}')
n=0
if [ -n "$head" ]; then
	if [ -n "$base" ]; then n=$(g rev-list --count HEAD "^$base") || exit 1; else n=$(g rev-list --count HEAD) || exit 1; fi
fi
d=$(g status --porcelain --untracked-files=normal --ignore-submodules=all | head -n 1) || exit 1
echo "moat-pending repo ${head:--} ${base:--} $n ${d:+dirty}"
`

// Inspect looks at the repository in h's WorkDir, in one Exec that
// changes nothing.
func Inspect(ctx context.Context, h sandbox.Handle, o Options) (Pending, error) {
	s := newSyncer(h, o)
	out, err := s.run(ctx, pendingScript, nil)
	if err != nil {
		return Pending{}, fmt.Errorf("inspecting the sandbox repository: %w", err)
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "moat-pending" {
			continue
		}
		if f[1] == "norepo" {
			return Pending{}, nil
		}
		if len(f) < 5 {
			break
		}
		p := Pending{Repo: true, Head: dash(f[2]), Base: dash(f[3]), Dirty: len(f) > 5 && f[5] == "dirty"}
		p.Ahead, err = strconv.Atoi(f[4])
		if err != nil {
			break
		}
		return p, nil
	}
	return Pending{}, fmt.Errorf("inspecting the sandbox repository: unexpected answer %q", short(out))
}

func dash(s string) string {
	if s == "-" {
		return ""
	}
	return s
}
