#!/bin/sh
# Install the static routes; forwarding starts with start.
set -eu
. ./lib.sh
lines=$(routes "$@")
[ -n "$lines" ] && printf '%s\n' "$lines" | ip -batch -
exit 0
