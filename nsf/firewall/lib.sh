# The firewall's parameters and its nftables ruleset; sourced by its scripts.
#
# Parameters (each "key=value"; keys may repeat):
#   default=accept|drop          what happens to traffic no rule matches (accept)
#   block-src=A, block-dst=A     drop IPv4 from/to A (address or prefix, 10.0.0.0/24)
#   block-tcp-dst=P, block-udp-dst=P, block-tcp-src=P, block-udp-src=P
#                                drop TCP/UDP to/from port P (a port or a range 1000-2000)
#   block-icmp                   drop ICMP
#   allow-src=A, allow-dst=A, allow-tcp-dst=P, allow-udp-dst=P, allow-tcp-src=P,
#   allow-udp-src=P, allow-icmp  accept such new traffic (useful with default=drop)
# Order: block rules first (they also cut established flows), then replies of accepted
# flows (conntrack), then allow rules, then the default. ARP always passes.

BRIDGE=br0
TABLE=composer_fw

fail() {
    echo "firewall: $*" >&2
    exit 2
}

check_port() {
    case "$1" in
        '' | *[!0-9-]* | -* | *- | *-*-*) fail "bad port or port range '$1'" ;;
    esac
}

check_addr() {
    case "$1" in
        '' | *[!0-9./]*) fail "bad IPv4 address or prefix '$1'" ;;
    esac
}

# ruleset PARAMETER...: print the nftables ruleset (the firewall's table).
ruleset() {
    default=accept
    blocks=""
    allows=""
    nl='
'
    for p in "$@"; do
        key=${p%%=*}
        value=${p#*=}
        [ "$key" = "$p" ] && value=""
        case "$key" in
            default)
                case "$value" in
                    accept | drop) default=$value ;;
                    *) fail "default must be accept or drop, not '$value'" ;;
                esac
                continue ;;
            block-src | allow-src) check_addr "$value"; rule="ip saddr $value" ;;
            block-dst | allow-dst) check_addr "$value"; rule="ip daddr $value" ;;
            block-tcp-dst | allow-tcp-dst) check_port "$value"; rule="tcp dport $value" ;;
            block-tcp-src | allow-tcp-src) check_port "$value"; rule="tcp sport $value" ;;
            block-udp-dst | allow-udp-dst) check_port "$value"; rule="udp dport $value" ;;
            block-udp-src | allow-udp-src) check_port "$value"; rule="udp sport $value" ;;
            block-icmp | allow-icmp) rule="ip protocol icmp" ;;
            *) fail "unknown parameter '$p'" ;;
        esac
        case "$key" in
            block-*) blocks="$blocks$nl        $rule counter drop" ;;
            allow-*) allows="$allows$nl        $rule counter accept" ;;
        esac
    done
    cat <<RULES
table inet $TABLE {
    chain forward {
        type filter hook forward priority filter; policy $default;$blocks
        ct state established,related accept$allows
    }
}
RULES
}

# replacing RULESET: RULESET as one transaction that replaces the table loaded before.
# (create runs in a fresh namespace and loads the table alone: deleting a table makes the
# kernel wait for a grace period, 5-15 ms.)
replacing() {
    printf 'table inet %s\ndelete table inet %s\n%s\n' "$TABLE" "$TABLE" "$1"
}
