#!/bin/sh
# A fake Cursor CLI for moat's end-to-end tests: it reads its prompt from
# stdin, as cursor-agent --print does when no prompt is given, writes it to
# PROMPT.txt, commits that, and prints the stream-json cursor-agent would,
# telling its arguments in a message.
set -u
case "${1:-}" in --version|-v) echo "2026.02.13-41ac335"; exit 0 ;; esac
prompt=$(cat)
esc() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g' | awk 'BEGIN{ORS=""} NR>1{print "\\n"} {print}'; }
s='"session_id":"fake-cursor-session"'
echo '{"type":"system","subtype":"init","apiKeySource":"env","cwd":"/r",'"$s"',"model":"Composer 2","permissionMode":"default"}'
printf '{"type":"user","message":{"role":"user","content":[{"type":"text","text":"%s"}]},%s}\n' "$(esc "$prompt")" "$s"
printf '{"type":"assistant","message":{"role":"assistant","content":[{"type":"text","text":"args: %s"}]},%s}\n' "$(esc "$*")" "$s"
printf '%s\n' "$prompt" > PROMPT.txt
echo '{"type":"tool_call","subtype":"started","call_id":"c1","tool_call":{"shellToolCall":{"args":{"command":"git commit -m note"}}},'"$s"'}'
git add PROMPT.txt && git commit -q -m "cursor: note the prompt"
echo '{"type":"tool_call","subtype":"completed","call_id":"c1","tool_call":{"shellToolCall":{"args":{"command":"git commit -m note"},"result":{"success":{"exitCode":0}}}},'"$s"'}'
echo 'not JSON, ignored'
echo '{"type":"assistant","message":{"role":"assistant","content":[{"type":"text","text":"done <promise>COMPLETE</promise>"}]},'"$s"'}'
echo '{"type":"result","subtype":"success","is_error":false,"result":"done <promise>COMPLETE</promise>",'"$s"',"usage":{"inputTokens":100,"outputTokens":20,"cacheReadTokens":7,"cacheWriteTokens":3}}'
echo '{"type":"result","subtype":"succ'
