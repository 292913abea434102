#!/bin/sh
set -eu
ip link set br0 up
