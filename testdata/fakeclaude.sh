#!/bin/sh
# A fake Claude Code for moat's end-to-end tests. It speaks the stream-json
# that `claude --print --verbose --output-format stream-json` prints, and its
# prompt is a shell script that it runs in the repository (so each test says
# what the "agent" does). Helpers for that script:
#   say TEXT      an assistant text message
#   tool CMD      a Bash tool call, then runs CMD
#   commit MSG    git add -A and commit
# $ITERATION counts invocations in this sandbox's repository (kept in its
# .git directory, so parallel runs on one host do not share it).
set -u
for a in "$@"; do
	case "$a" in --version) echo "9.9.9 (fake Claude Code)"; exit 0 ;; esac
done
prompt=$(cat)
json() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g' | awk 'BEGIN{ORS=""} NR>1{print "\\n"} {print}'; }
say() { printf '{"type":"assistant","message":{"content":[{"type":"text","text":"%s"}]}}\n' "$(json "$1")"; }
tool() {
	printf '{"type":"assistant","message":{"content":[{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"%s"}}]}}\n' "$(json "$1")"
	sh -c "$1" >/dev/null 2>&1
}
commit() { git add -A && git commit -q -m "$1"; }
counter="$(git rev-parse --git-dir)/fakeclaude-iteration"
n=$(cat "$counter" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" > "$counter"
ITERATION=$n
echo '{"type":"system","subtype":"init","session_id":"fake-session-'$n'","model":"fake"}'
echo 'this line is not JSON and must be ignored'
eval "$prompt"
status=$?
printf '{"type":"result","subtype":"success","result":"done","session_id":"fake-session-%s","usage":{"input_tokens":100,"output_tokens":20,"cache_read_input_tokens":5,"cache_creation_input_tokens":1}}\n' "$n"
exit $status
