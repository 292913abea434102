#!/bin/sh
set -eu
if [ -f "$COMPOSER_RUN_DIR/relay.pid" ]; then
    kill "$(cat "$COMPOSER_RUN_DIR/relay.pid")" 2>/dev/null || true
    rm -f "$COMPOSER_RUN_DIR/relay.pid"
fi
