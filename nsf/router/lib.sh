# The router's parameters; sourced by its scripts.
#
#   route=<dst>,via=<gateway>[,dev=<ifname>]   a static route (dst: a.b.c.d/len or default)
#   route=<dst>,dev=<ifname>                   a route straight out of a port
# The key may repeat. Port addresses come from the ports (COMPOSER_PORT_<n>_IPV4).

fail() {
    echo "router: $*" >&2
    exit 2
}

# routes PARAMETER...: print one "route replace ..." line per route for `ip -batch -`.
routes() {
    for p in "$@"; do
        case "$p" in
            route=*) ;;
            *) fail "unknown parameter '$p'" ;;
        esac
        spec=${p#route=}
        dst=${spec%%,*}
        via=""
        dev=""
        rest=""
        [ "$dst" != "$spec" ] && rest=${spec#*,}
        while [ -n "$rest" ]; do
            item=${rest%%,*}
            case "$item" in
                via=*) via=${item#via=} ;;
                dev=*) dev=${item#dev=} ;;
                *) fail "bad route option '$item' in '$p'" ;;
            esac
            [ "$item" = "$rest" ] && rest="" || rest=${rest#*,}
        done
        case "$dst" in
            default) ;;
            '' | *[!0-9./]*) fail "bad destination '$dst' in '$p'" ;;
        esac
        case "$via" in
            *[!0-9.]*) fail "bad gateway '$via' in '$p'" ;;
        esac
        case "$dev" in
            *[!A-Za-z0-9_.-]*) fail "bad interface '$dev' in '$p'" ;;
        esac
        [ -z "$via" ] && [ -z "$dev" ] && fail "route '$p' needs via= or dev="
        line="route replace $dst"
        [ -n "$via" ] && line="$line via $via"
        [ -n "$dev" ] && line="$line dev $dev"
        echo "$line"
    done
}
