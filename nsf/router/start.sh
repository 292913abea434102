#!/bin/sh
set -eu
echo 1 > /proc/sys/net/ipv4/ip_forward
