#!/bin/sh
set -eu
echo 0 > /proc/sys/net/ipv4/ip_forward
