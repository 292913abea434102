#!/bin/sh
# A Linux bridge over every port, down until start.
# Parameters: ageing=<seconds> (MAC ageing time).
set -eu
ageing=300
for p in "$@"; do
    case "$p" in
        ageing=*) ageing=${p#ageing=} ;;
        *) echo "bridge: unknown parameter '$p'" >&2; exit 2 ;;
    esac
done
case "$ageing" in
    '' | *[!0-9]*) echo "bridge: ageing must be a number of seconds" >&2; exit 2 ;;
esac
{
    echo "link add br0 type bridge stp_state 0 ageing_time $((ageing * 100))"
    for ifname in $COMPOSER_PORTS; do
        echo "link set $ifname master br0"
    done
} | ip -batch -
