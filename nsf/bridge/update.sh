#!/bin/sh
# Added ports join the bridge; removed ones are already gone.
set -eu
for ifname in $COMPOSER_PORTS_ADDED; do
    ip link set "$ifname" master br0
done
