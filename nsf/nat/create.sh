#!/bin/sh
# Masquerade what leaves by the outside port; only replies come back in.
# Parameters:
#   inside=<ifname> (eth0), outside=<ifname> (eth1)
#   inside-ip=<a.b.c.d/len>, outside-ip=<a.b.c.d/len>   addresses when the ports have none
#   gateway=<a.b.c.d>                                    default route on the outside
set -eu
inside=eth0
outside=eth1
inside_ip=""
outside_ip=""
gateway=""
fail() {
    echo "nat: $*" >&2
    exit 2
}
for p in "$@"; do
    case "$p" in
        inside=*) inside=${p#*=} ;;
        outside=*) outside=${p#*=} ;;
        inside-ip=*) inside_ip=${p#*=} ;;
        outside-ip=*) outside_ip=${p#*=} ;;
        gateway=*) gateway=${p#*=} ;;
        *) fail "unknown parameter '$p'" ;;
    esac
done
for name in "$inside" "$outside"; do
    case "$name" in
        '' | *[!A-Za-z0-9_.-]*) fail "bad interface name '$name'" ;;
    esac
    ip link show dev "$name" > /dev/null || fail "no port '$name'"
done
for value in "$inside_ip" "$outside_ip" "$gateway"; do
    case "$value" in
        *[!0-9./]*) fail "bad IPv4 address '$value'" ;;
    esac
done
[ -n "$inside_ip" ] && ip addr replace "$inside_ip" dev "$inside"
[ -n "$outside_ip" ] && ip addr replace "$outside_ip" dev "$outside"
[ -n "$gateway" ] && ip route replace default via "$gateway" dev "$outside"
# A fresh namespace holds no table yet: no delete first (deleting one makes the kernel
# wait for a grace period).
nft -f - <<RULES
table ip composer_nat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "$outside" masquerade
    }
    chain forward {
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        iifname "$inside" oifname "$outside" accept
    }
}
RULES
