#!/usr/bin/env bash
# moat's main job, end to end, with no account and no network: a scratch
# repository, the exe.dev emulator, and a small example agent
# (examples/agents/greeter.sh) that commits inside the VM. The commit lands
# on the scratch repository's main branch.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
for tool in go git; do
	command -v "$tool" >/dev/null || { echo "demo.sh: $tool is not installed" >&2; exit 1; }
done
# The emulator contains each VM with bubblewrap, and refuses to run without
# it: install it when missing and possible (Debian/Ubuntu, as root or with
# passwordless sudo), else run the demo uncontained and say so.
isolation=()
if ! command -v bwrap >/dev/null; then
	as_root=()
	[ "$(id -u)" -eq 0 ] || as_root=(sudo -n)
	if command -v apt-get >/dev/null && { [ "$(id -u)" -eq 0 ] || sudo -n true 2>/dev/null; }; then
		echo "== installing bubblewrap with apt-get (the emulator contains its VMs with it)"
		"${as_root[@]}" apt-get update -qq >/dev/null
		DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends bubblewrap >/dev/null
	else
		echo "demo.sh: bubblewrap is not installed, so the emulator cannot contain its VMs;" >&2
		echo "  the demo runs the example agent uncontained (--no-isolation). Install bubblewrap to see it contained." >&2
		isolation=(--no-isolation)
	fi
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/moat-demo-XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "== building moat"
(cd "$here" && go build -o "$work/moat" ./cmd/moat)

echo "== a scratch repository with the example agent in it: $work/repo"
repo="$work/repo"
git init -q -b main "$repo"
git -C "$repo" config user.name "Demo User"
git -C "$repo" config user.email "demo@example.com"
echo "# scratch" > "$repo/README.md"
cp "$here/examples/agents/greeter.sh" "$repo/greeter.sh"
git -C "$repo" add README.md greeter.sh
git -C "$repo" commit -q -m "initial commit"

echo "== moat run on the exe.dev emulator"
"$work/moat" run --repo "$repo" --sandbox emulator "${isolation[@]}" \
	--agent command --agent-cmd 'sh greeter.sh' \
	-p "Hello from inside an exe.dev VM"

echo "== the scratch repository's main branch now:"
git -C "$repo" log --oneline main
