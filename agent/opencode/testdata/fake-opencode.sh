#!/bin/sh
# A fake opencode for moat's end-to-end tests: it reads its prompt from
# stdin, as opencode run does (appended to its message: none here), writes
# it to PROMPT.txt, commits that, and prints the --format json stream
# opencode would, telling its arguments in a text.
set -u
case "${1:-}" in --version|-v) echo "1.18.33"; exit 0 ;; esac
[ "${1:-}" = run ] || { echo "fake opencode: want run, got $*" >&2; exit 2; }
prompt=$(cat)
esc() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g' | awk 'BEGIN{ORS=""} NR>1{print "\\n"} {print}'; }
s='"sessionID":"ses_fake_opencode"'
echo '{"type":"step_start","timestamp":1,'"$s"',"part":{"type":"step-start"}}'
printf '{"type":"text","timestamp":2,%s,"part":{"type":"text","text":"args: %s"}}\n' "$s" "$(esc "$*")"
printf '%s\n' "$prompt" > PROMPT.txt
git add PROMPT.txt && git commit -q -m "opencode: note the prompt"
echo '{"type":"tool_use","timestamp":3,'"$s"',"part":{"type":"tool","tool":"bash","callID":"c1","state":{"status":"completed","input":{"command":"git commit -m note"},"output":""}}}'
echo 'not JSON, ignored'
echo '{"type":"step_finish","timestamp":4,'"$s"',"part":{"type":"step-finish","reason":"tool-calls","tokens":{"input":10,"output":5,"reasoning":0,"cache":{"read":0,"write":0}}}}'
echo '{"type":"text","timestamp":5,'"$s"',"part":{"type":"text","text":"done <promise>COMPLETE</promise>"}}'
echo '{"type":"step_finish","timestamp":6,'"$s"',"part":{"type":"step-finish","reason":"stop","tokens":{"input":100,"output":20,"reasoning":0,"cache":{"read":7,"write":3}}}}'
echo '{"type":"step_finish","timestamp":7,'"$s"',"part":{"type":"step-fin'
