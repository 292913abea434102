#!/bin/sh
# Bridge the ports (down until start) and load the rules made from the parameters.
set -eu
. ./lib.sh
rules=$(ruleset "$@")
{
    echo "link add $BRIDGE type bridge stp_state 0"
    for ifname in $COMPOSER_PORTS; do
        echo "link set $ifname master $BRIDGE"
    done
} | ip -batch -
# Bridged IPv4 traverses the inet hooks (and conntrack) through br_netfilter. In a
# container /proc/sys is read-only and the runtime has set it already (docker.json).
nf_call=/proc/sys/net/bridge/bridge-nf-call-iptables
if [ ! -r "$nf_call" ]; then
    fail "br_netfilter is not available (modprobe br_netfilter)"
fi
[ "$(cat "$nf_call")" = 1 ] || echo 1 > "$nf_call"
printf '%s\n' "$rules" | nft -f -
