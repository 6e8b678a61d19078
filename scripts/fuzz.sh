#!/usr/bin/env bash
# Runs every fuzz target of the repository, one after the other, each for
# MOAT_FUZZTIME (default 5s), and fails on the first crash.
#
#   ./scripts/fuzz.sh                      # CI: 5s per target
#   MOAT_FUZZTIME=2m ./scripts/fuzz.sh     # a long local run
#   MOAT_FUZZTIME=100000x ./scripts/fuzz.sh  # a fixed number of executions
#   ./scripts/fuzz.sh FuzzParseLobby       # only targets matching a regexp
#
# The targets are found, not listed: every `func FuzzXxx(f *testing.F)` in
# a _test.go file (tracked by git, or new), so a new one is never forgotten.
# Each runs with go test -run '^$' -fuzz '^Name$' -fuzztime $MOAT_FUZZTIME
# ./its/package, which first replays the package's checked-in seeds
# (testdata/fuzz/<Name>/). A crash makes go test write the failing input to
# that directory and print it; fix the bug and keep the file as a seed.
# With the default, the whole run takes about 45s on 2 cores (building
# included, the build cache warm).
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime=${MOAT_FUZZTIME:-5s}
only=${1:-.}

# Test files: those git knows plus new ones it does not track yet; every
# test file outside a checkout.
test_files() {
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git ls-files --cached --others --exclude-standard '*_test.go'
	else
		find . -name '*_test.go' -not -path './.git/*' | sed 's|^\./||'
	fi
}

# "dir name" lines, one per fuzz target, sorted.
targets=$(test_files | sort -u | while read -r file; do
	[ -f "$file" ] || continue
	sed -n -E 's/^func (Fuzz[A-Za-z0-9_]*)\([A-Za-z_][A-Za-z0-9_]* \*testing\.F\).*/\1/p' "$file" | while read -r name; do
		echo "$(dirname "$file") $name"
	done
done | sort -u | grep -E " .*${only}" || true)
if [ -z "$targets" ]; then
	echo "fuzz.sh: no fuzz targets found (matching $only)" >&2
	exit 1
fi

start=$SECONDS
n=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
while read -r dir name; do
	n=$((n + 1))
	t0=$SECONDS
	fuzz() { go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "./$dir" >"$log" 2>&1; }
	ok=1
	fuzz || ok=
	# Go 1.26's fuzz coordinator can report "context deadline exceeded"
	# as -fuzztime ends on a busy machine, having found nothing
	# (go.dev/issue/75804, fixed in Go 1.27): only then, run it once more.
	# A real finding always writes its input ("Failing input written").
	if [ -z "$ok" ] && grep -q 'context deadline exceeded' "$log" && ! grep -qE 'Failing input written|panic:' "$log"; then
		echo "fuzz.sh: $name: the fuzz engine's deadline race (nothing found); running it again" >&2
		ok=1
		fuzz || ok=
	fi
	if [ -z "$ok" ]; then
		cat "$log" >&2
		echo "fuzz.sh: $name in ./$dir FAILED; the failing input is in ./$dir/testdata/fuzz/$name/ (see above)" >&2
		exit 1
	fi
	execs=$(grep -oE 'execs: [0-9]+' "$log" | tail -1 || true)
	printf '%-18s %-22s ok  %3ds  %s\n' "$name" "./$dir" $((SECONDS - t0)) "${execs:-execs: ?}"
done <<<"$targets"
echo "fuzz.sh: $n targets, ${fuzztime} each: all passed in $((SECONDS - start))s"
