#!/usr/bin/env bash
# bench-sandcastle.sh — moat vs Sandcastle, the same run on the same machine.
#
# Both tools get an identical repository (2,000 files, 1,000 commits, made with
# git fast-import exactly as benchRepo in run_bench_test.go makes it), fresh
# per run, and the same "instant agent": a fake `claude` on PATH that reads
# the prompt, makes one commit and prints a stream-json result carrying
# <promise>COMPLETE</promise>.
#
#   moat:       moat run --sandbox local --agent claude -p go --json
#   Sandcastle: run({agent: claudeCode(...), sandbox: <temp-dir isolated
#               provider>, maxIterations: 1, branchStrategy: merge-to-head})
#               from @ai-hero/sandcastle (installed with npm into a cache dir)
#
# The rounds interleave the two tools (alternating which goes first); every
# run is checked to have landed the agent's commit on main. It prints wall
# times per round, medians, the ratio moat/Sandcastle (target ≤ 1/3), moat's
# phases and the peak RSS of each.
#
# Usage:  scripts/bench-sandcastle.sh
# Environment:
#   ROUNDS=5              timed rounds (each runs both tools once)
#   WARMUP=1              untimed rounds first
#   FILES=2000 COMMITS=1000   the repository
#   MOAT=path             a moat binary to use instead of building ./cmd/moat
#   SANDCASTLE_VERSION=0.12.0
#   SANDCASTLE_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/moat-bench/sandcastle
#   BENCH_TMPDIR=/var/tmp where the work directory goes (not under /tmp: see below)
#   SCRATCH=dir           where the repositories and both tools' sandboxes
#                         go (TMPDIR); default: inside the work directory.
#                         SCRATCH=/dev/shm takes the disk out of the picture.
#   SYNC=1                `sync` before every timed run (0: don't)
#   KEEP_REPOS=1          keep each run's repository until the end (0: delete
#                         it after the run; see BENCHMARKS.md for why not)
#
# Not part of CI. Needs git, node ≥ 20 and npm (and go unless MOAT is set),
# and GNU time (/usr/bin/time; installed with apt-get when missing and root).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
helper=$here/bench-sandcastle/run.mjs

ROUNDS=${ROUNDS:-5}
WARMUP=${WARMUP:-1}
FILES=${FILES:-2000}
COMMITS=${COMMITS:-1000}
SANDCASTLE_VERSION=${SANDCASTLE_VERSION:-0.12.0}
SANDCASTLE_CACHE=${SANDCASTLE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/moat-bench/sandcastle}
BENCH_TMPDIR=${BENCH_TMPDIR:-/var/tmp}

die() { printf 'bench-sandcastle: %s\n' "$*" >&2; exit 1; }
say() { printf '%s\n' "$*" >&2; }

for v in ROUNDS WARMUP FILES COMMITS; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a number, not '${!v}'"
done
((ROUNDS >= 1)) || die "ROUNDS must be at least 1"
((FILES >= 1 && COMMITS >= 1)) || die "FILES and COMMITS must be at least 1"

# --- tools -----------------------------------------------------------------

command -v git >/dev/null || die "git is not installed"
command -v node >/dev/null || die "node is not installed: Sandcastle is a Node.js library (install Node.js ≥ 20, e.g. apt-get install nodejs npm)"
command -v npm >/dev/null || die "npm is not installed: it is needed once, to install @ai-hero/sandcastle@$SANDCASTLE_VERSION into $SANDCASTLE_CACHE (e.g. apt-get install npm)"
node_major=$(node -p 'process.versions.node.split(".")[0]')
((node_major >= 20)) || die "node $(node --version) is too old: Sandcastle needs Node.js ≥ 20"

gnutime=/usr/bin/time
if ! "$gnutime" -f %M true >/dev/null 2>&1; then
	if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
		say "GNU time is missing; installing it with apt-get (package 'time')"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null ||
			die "apt-get install -y time failed; install GNU time (/usr/bin/time) to measure peak RSS"
	fi
	"$gnutime" -f %M true >/dev/null 2>&1 || die "GNU time (/usr/bin/time) is missing: apt-get install -y time"
fi

# --- work directory ----------------------------------------------------------

# Not under /tmp: moat's local sandbox mounts its own directory over /tmp
# inside bubblewrap, so a fake claude under /tmp would be invisible there
# (moat would then try to npm-install the real one). Directories on PATH
# elsewhere are bound read-only into the sandbox, which is how it finds the
# fake.
mkdir -p "$BENCH_TMPDIR"
BENCH_TMPDIR=$(cd "$BENCH_TMPDIR" && pwd -P)
case $BENCH_TMPDIR/ in
/tmp/*) die "BENCH_TMPDIR ($BENCH_TMPDIR) is under /tmp, which moat's local sandbox hides: choose another directory (default /var/tmp)" ;;
esac
work=$(mktemp -d "$BENCH_TMPDIR/moat-bench-sandcastle.XXXXXX")
scratch=$work
cleanup() { rm -rf "$work" "$scratch"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if [[ -n ${SCRATCH:-} ]]; then
	mkdir -p "$SCRATCH"
	scratch=$(mktemp -d "$(cd "$SCRATCH" && pwd -P)/moat-bench-sandcastle.XXXXXX")
fi
mkdir -p "$work/bin" "$scratch/tmp"
: >"$work/gitconfig"
# Both tools: the same empty global git config (the user's is not read and
# not written), temp files (their sandboxes) in the scratch directory.
export GIT_CONFIG_GLOBAL=$work/gitconfig TMPDIR=$scratch/tmp
# The fake claude needs no credential, but moat checks that one is set
# before it makes a sandbox, as for the real one; Sandcastle ignores it.
export ANTHROPIC_API_KEY=moat-bench-not-a-real-key

# --- moat ----------------------------------------------------------------------

if [[ -n ${MOAT:-} ]]; then
	[[ -x $MOAT ]] || die "MOAT=$MOAT is not an executable"
	moat=$MOAT
	moat_rev="$MOAT"
else
	command -v go >/dev/null || die "go is not installed (or set MOAT to a moat binary)"
	say "building moat (go build ./cmd/moat)"
	(cd "$root" && go build -o "$work/moat" ./cmd/moat) || die "go build ./cmd/moat failed"
	moat=$work/moat
	moat_rev=$(git -C "$root" rev-parse --short HEAD)
	[[ -z $(git -C "$root" status --porcelain --untracked-files=no -- '*.go' go.mod go.sum) ]] || moat_rev+=" + uncommitted changes"
fi

# --- Sandcastle ------------------------------------------------------------------

sc_pkg=$SANDCASTLE_CACHE/node_modules/@ai-hero/sandcastle/package.json
sc_have=$( [[ -f $sc_pkg ]] && node -p "require(process.argv[1]).version" "$sc_pkg" 2>/dev/null || true)
if [[ $sc_have != "$SANDCASTLE_VERSION" ]]; then
	say "installing @ai-hero/sandcastle@$SANDCASTLE_VERSION into $SANDCASTLE_CACHE"
	mkdir -p "$SANDCASTLE_CACHE"
	printf '{"name":"moat-bench-sandcastle","private":true,"type":"module"}\n' >"$SANDCASTLE_CACHE/package.json"
	rm -f "$SANDCASTLE_CACHE/package-lock.json"
	(cd "$SANDCASTLE_CACHE" && npm install --no-fund --no-audit --save-exact --loglevel=error "@ai-hero/sandcastle@$SANDCASTLE_VERSION" >&2) ||
		die "npm install @ai-hero/sandcastle@$SANDCASTLE_VERSION failed (is the npm registry reachable?)"
	sc_have=$(node -p "require(process.argv[1]).version" "$sc_pkg")
	[[ $sc_have == "$SANDCASTLE_VERSION" ]] || die "npm installed sandcastle $sc_have, not $SANDCASTLE_VERSION"
fi
export SANDCASTLE_DIR=$SANDCASTLE_CACHE

# --- the instant agent --------------------------------------------------------------

# One fake for both tools. moat runs `claude --version` to find it, then
# `claude --print --verbose --output-format stream-json
# --dangerously-skip-permissions` with the prompt on stdin; Sandcastle runs
# `claude --print --verbose --dangerously-skip-permissions --output-format
# stream-json --model M -p -` with the prompt on stdin. Both parse the
# system/init and result lines.
cat >"$work/bin/claude" <<'EOF'
#!/bin/sh
# fake claude for scripts/bench-sandcastle.sh: one commit, then a result.
for a in "$@"; do
	[ "$a" = --version ] && { echo "0.0.0 (fake claude for the moat/Sandcastle benchmark)"; exit 0; }
done
cat >/dev/null
echo x >> instant.txt && git add instant.txt && git commit -qm instant || exit 1
echo '{"type":"system","subtype":"init","session_id":"bench-session"}'
echo '{"type":"result","subtype":"success","is_error":false,"result":"<promise>COMPLETE</promise>","session_id":"bench-session"}'
EOF
chmod +x "$work/bin/claude"
agent_path=$work/bin:$PATH

# --- the repository ----------------------------------------------------------------

say "building the repository ($FILES files, $COMMITS commits, git fast-import)"
tpl=$scratch/template
git init -q -b main "$tpl"
node "$helper" gen "$FILES" "$COMMITS" | git -C "$tpl" fast-import --quiet
git -C "$tpl" checkout -q -f main
git -C "$tpl" config user.name Bench
git -C "$tpl" config user.email bench@example.com
base=$(git -C "$tpl" rev-parse main)

# fresh_repo NAME: a copy of the template, so every run starts from the same
# state. Copying is outside the timing, and so is the sync after it: on a
# slow disk the dirty pages of the previous run and of the copy would
# otherwise be written back during the next timed run, whichever tool it is
# (SYNC=0 to skip).
fresh_repo() {
	rm -rf "${scratch:?}/$1"
	cp -a "$tpl" "$scratch/$1"
	[[ ${SYNC:-1} == 0 ]] || sync
	printf '%s\n' "$scratch/$1"
}

# verify TOOL REPO: the agent's commit is on main, main is checked out, and
# the working tree has it.
verify() {
	local tool=$1 repo=$2 tip branch
	branch=$(git -C "$repo" symbolic-ref --short HEAD 2>/dev/null || echo "(detached)")
	[[ $branch == main ]] || die "$tool: HEAD is on $branch, not main, after the run in $repo"
	tip=$(git -C "$repo" rev-parse main)
	[[ $tip != "$base" ]] || die "$tool: main did not move: the agent's commit did not land ($repo)"
	git -C "$repo" merge-base --is-ancestor "$base" main || die "$tool: main no longer contains the base commit ($repo)"
	git -C "$repo" log --format=%s "$base..main" | grep -qx instant || die "$tool: no 'instant' commit in $base..main ($repo)"
	[[ $(git -C "$repo" show main:instant.txt) == x ]] || die "$tool: main:instant.txt is not 'x' ($repo)"
	[[ -f $repo/instant.txt && $(<"$repo/instant.txt") == x ]] || die "$tool: instant.txt is not in the working tree ($repo)"
	[[ -z $(git -C "$repo" status --porcelain --untracked-files=no) ]] || die "$tool: the working tree has changes after the run ($repo)"
}

now_ns() { date +%s%N; }
records=$work/records.jsonl
: >"$records"

# run_moat ROUND: one moat run on a fresh repo; appends a record (ROUND 0 = warm-up).
run_moat() {
	local round=$1 repo t0 t1 res rss
	repo=$(fresh_repo "moat-$round")
	t0=$(now_ns)
	if ! (cd "$repo" && PATH=$agent_path "$gnutime" -f %M -o "$work/rss" \
		"$moat" run --sandbox local --agent claude -p go --json >"$work/moat.out" 2>"$work/moat.err"); then
		say "--- moat stderr:"; cat "$work/moat.err" >&2
		say "--- moat stdout (tail):"; tail -n 20 "$work/moat.out" >&2
		die "moat run failed in round $round"
	fi
	t1=$(now_ns)
	if ! grep -q '0.0.0 (fake claude' "$work/moat.out"; then
		grep '"status"' "$work/moat.out" | head -n 5 >&2 || true
		die "moat round $round did not use the fake claude in $work/bin"
	fi
	res=$(node "$helper" moat-result "$work/moat.out") || die "moat round $round: no usable result event"
	rss=$(tail -n 1 "$work/rss")
	verify moat "$repo"
	printf '{"tool":"moat","round":%d,"wall":%d,"rss":%d,"res":%s}\n' "$round" $(((t1 - t0) / 1000000)) "$rss" "$res" >>"$records"
	[[ ${KEEP_REPOS:-1} == 1 ]] || rm -rf "$repo"
}

# run_sandcastle ROUND: the same with Sandcastle.
run_sandcastle() {
	local round=$1 repo t0 t1 res rss
	repo=$(fresh_repo "sandcastle-$round")
	t0=$(now_ns)
	if ! (cd "$repo" && PATH=$agent_path "$gnutime" -f %M -o "$work/rss" \
		node "$helper" sandcastle "$repo" >"$work/sc.out" 2>"$work/sc.err"); then
		say "--- sandcastle stderr:"; cat "$work/sc.err" >&2
		say "--- sandcastle stdout (tail):"; tail -n 20 "$work/sc.out" >&2
		for l in "$repo"/.sandcastle/logs/*.log; do [[ -f $l ]] && { say "--- $l:"; cat "$l" >&2; }; done
		die "Sandcastle run failed in round $round"
	fi
	t1=$(now_ns)
	res=$(grep '^{' "$work/sc.out" | tail -n 1)
	[[ -n $res ]] || die "Sandcastle round $round printed no result line"
	rss=$(tail -n 1 "$work/rss")
	verify Sandcastle "$repo"
	printf '{"tool":"sandcastle","round":%d,"wall":%d,"rss":%d,"res":%s}\n' "$round" $(((t1 - t0) / 1000000)) "$rss" "$res" >>"$records"
	[[ ${KEEP_REPOS:-1} == 1 ]] || rm -rf "$repo"
}

# --- rounds ---------------------------------------------------------------------------

say "scratch directory $scratch ($(df --output=fstype "$scratch" | tail -n 1))"
say "moat $moat_rev, Sandcastle $sc_have, node $(node --version), $(git --version), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for ((w = 1; w <= WARMUP; w++)); do
	say "warm-up $w/$WARMUP"
	run_moat 0
	run_sandcastle 0
done
for ((r = 1; r <= ROUNDS; r++)); do
	if ((r % 2)); then run_moat "$r"; run_sandcastle "$r"; else run_sandcastle "$r"; run_moat "$r"; fi
	node "$helper" round "$records" "$r" >&2
done

node "$helper" report "$records"
say "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
