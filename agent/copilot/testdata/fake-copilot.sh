#!/bin/sh
# A fake GitHub Copilot CLI for moat's end-to-end tests: it reads its
# prompt from stdin, as copilot does when no -p is given, writes it to
# PROMPT.txt, commits that, and prints the --output-format json stream
# copilot would, telling its arguments in a message.
set -u
case "${1:-}" in --version|-v) echo "GitHub Copilot CLI 1.0.102."; exit 0 ;; esac
prompt=$(cat)
esc() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g' | awk 'BEGIN{ORS=""} NR>1{print "\\n"} {print}'; }
printf '{"type":"user.message","data":{"content":"%s\\n"},"id":"u1"}\n' "$(esc "$prompt")"
printf '{"type":"assistant.message_delta","data":{"messageId":"m1","deltaContent":"args: "},"ephemeral":true}\n'
printf '{"type":"assistant.message","data":{"messageId":"m1","content":"args: %s","toolRequests":[]}}\n' "$(esc "$*")"
printf '%s\n' "$prompt" > PROMPT.txt
echo '{"type":"tool.execution_start","data":{"toolCallId":"c1","toolName":"bash","arguments":{"command":"git commit -m note","description":"commit"}}}'
git add PROMPT.txt && git commit -q -m "copilot: note the prompt"
echo '{"type":"tool.execution_complete","data":{"toolCallId":"c1","success":true,"result":{"content":""}}}'
echo 'not JSON, ignored'
echo '{"type":"assistant.message","data":{"messageId":"m2","content":"done <promise>COMPLETE</promise>","toolRequests":[]}}'
echo '{"type":"result","timestamp":"2026-12-07T23:42:58.141Z","sessionId":"fake-copilot-session","exitCode":0,"usage":{"premiumRequests":1}}'
echo '{"type":"result","sessionId":"cut'
