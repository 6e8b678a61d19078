#!/bin/sh
# A fake pi for moat's end-to-end tests: it reads its prompt from stdin,
# as pi --print does, writes it to PROMPT.txt, commits that, and prints
# the --mode json stream pi would, telling its arguments in a text.
set -u
case "${1:-}" in --version) echo "0.73.1"; exit 0 ;; esac
prompt=$(cat)
esc() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g' | awk 'BEGIN{ORS=""} NR>1{print "\\n"} {print}'; }
echo '{"type":"session","version":3,"id":"fake-pi-session","timestamp":"2026-12-07T23:31:14.697Z","cwd":"'"$(esc "$PWD")"'"}'
echo '{"type":"agent_start"}'
echo 'not JSON, ignored'
printf '{"type":"message_end","message":{"role":"assistant","content":[{"type":"text","text":"args: %s"}],"usage":{"input":10,"output":5,"cacheRead":0,"cacheWrite":0},"stopReason":"toolUse"}}\n' "$(esc "$*")"
printf '%s\n' "$prompt" > PROMPT.txt
echo '{"type":"tool_execution_start","toolCallId":"t1","toolName":"bash","args":{"command":"git commit -m note"}}'
git add PROMPT.txt && git commit -q -m "pi: note the prompt"
echo '{"type":"message_end","message":{"role":"assistant","content":[{"type":"text","text":"done <promise>COMPLETE</promise>"}],"usage":{"input":100,"output":20,"cacheRead":7,"cacheWrite":3},"stopReason":"stop"}}'
echo '{"type":"agent_end","messages":[{"role":"assistant","content":[{"type":"text","text":"done <promise>COMPLETE</promise>"}],"stopReason":"stop"}]}'
echo '{"type":"agent_end","messages":[{"role":"assistant","content":[{"type":"text","text":"trunc'
