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
"$work/moat" run --repo "$repo" --sandbox emulator \
	--agent command --agent-cmd 'sh greeter.sh' \
	-p "Hello from inside an exe.dev VM"

echo "== the scratch repository's main branch now:"
git -C "$repo" log --oneline main
