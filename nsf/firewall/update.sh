#!/bin/sh
# New ports join the bridge; the rules are loaded again from the parameters.
set -eu
. ./lib.sh
rules=$(ruleset "$@")
for ifname in $COMPOSER_PORTS_ADDED; do
    ip link set "$ifname" master "$BRIDGE"
done
replacing "$rules" | nft -f -
