#!/bin/sh
set -eu
# A container's stop ends its network namespace anyway (and /proc/sys is read-only there).
if [ -w /proc/sys/net/ipv4/ip_forward ]; then
    echo 0 > /proc/sys/net/ipv4/ip_forward
fi
