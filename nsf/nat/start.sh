#!/bin/sh
set -eu
# In a container /proc/sys is read-only and the runtime has set it already (docker.json).
forward=/proc/sys/net/ipv4/ip_forward
[ "$(cat "$forward")" = 1 ] || echo 1 > "$forward"
