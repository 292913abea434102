#!/bin/sh
# Routes again (a new port may make a gateway reachable).
set -eu
. ./lib.sh
lines=$(routes "$@")
[ -n "$lines" ] && printf '%s\n' "$lines" | ip -batch -
exit 0
