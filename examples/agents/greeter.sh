#!/bin/sh
# A tiny stand-in for a coding agent, for demos and tests. Like a real one
# it reads its prompt on stdin, works in the repository it was started in,
# commits, and prints the completion signal. Run it with:
#
#   moat run --agent command --agent-cmd 'sh greeter.sh' -p 'Say hello'
set -eu
prompt=$(cat)
echo "greeter: I was asked: $prompt"
echo "greeter: working in $PWD on $(hostname) as $(id -un)"
printf '%s\n' "$prompt" >> GREETINGS.md
git add GREETINGS.md
git commit -q -m "greeter: $prompt"
echo "greeter: committed $(git log -1 --format='%h %s')"
echo "<promise>COMPLETE</promise>"
