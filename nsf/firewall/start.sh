#!/bin/sh
# Forward: bring the bridge up.
set -eu
. ./lib.sh
ip link set "$BRIDGE" up
