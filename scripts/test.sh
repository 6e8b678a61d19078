#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this script).
#
# It installs what the tests need when it is missing and it can (Debian or
# Ubuntu, as root or with passwordless sudo), and otherwise stops and says
# what to install. With CI=true no test that needs sshd or bwrap may skip.
set -euo pipefail
cd "$(dirname "$0")/.."

# Tools the tests drive for real: OpenSSH's sshd (interop), bubblewrap (local
# isolation), slirp4netns (the local sandbox's isolated network), nsenter
# (commands join their sandbox's network), git, sudo (Sandbox Sudo), and
# ssh/scp (benchmark baselines).
need_pkgs=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
have sshd || need_pkgs+=(openssh-server)
have ssh || need_pkgs+=(openssh-client)
have bwrap || need_pkgs+=(bubblewrap)
have slirp4netns || need_pkgs+=(slirp4netns)
have nsenter || need_pkgs+=(util-linux)
have git || need_pkgs+=(git)
have sudo || need_pkgs+=(sudo)
if ! have go; then
	echo "test.sh: Go is not installed. Install Go 1.26 or newer from https://go.dev/dl/ and run this again." >&2
	exit 1
fi

if [ ${#need_pkgs[@]} -gt 0 ]; then
	as_root=()
	[ "$(id -u)" -eq 0 ] || as_root=(sudo -n)
	if have apt-get && { [ "$(id -u)" -eq 0 ] || sudo -n true 2>/dev/null; }; then
		echo "test.sh: installing ${need_pkgs[*]} with apt-get" >&2
		"${as_root[@]}" apt-get update -qq >/dev/null
		DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
	else
		echo "test.sh: missing packages: ${need_pkgs[*]}" >&2
		echo "  install them (Debian/Ubuntu: sudo apt-get install ${need_pkgs[*]}) and run this again." >&2
		if [ "${CI:-}" = true ]; then exit 1; fi
		echo "  continuing: the tests that need them will be skipped." >&2
	fi
fi

echo "== go vet"
go vet ./...
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:" >&2
	echo "$unformatted" >&2
	exit 1
fi

echo "== cross-build (darwin, windows): the SSH transport and remote providers are pure Go"
GOOS=darwin GOARCH=arm64 go build ./...
GOOS=windows GOARCH=amd64 go build ./...

# Every package runs once, under the race detector: moat is concurrent
# throughout (sessions, timers, callbacks, copiers), and on 2 cores the
# whole suite (vet, builds, race tests, fuzzing) takes about 6 minutes.
echo "== go test -race"
go test -race -count=1 -timeout 15m ./...

# Every fuzz target, briefly (its checked-in seeds already ran above as unit
# tests). MOAT_FUZZTIME=2m ./scripts/fuzz.sh fuzzes longer.
echo "== fuzz (${MOAT_FUZZTIME:-5s} per target)"
./scripts/fuzz.sh
