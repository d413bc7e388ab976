#!/bin/sh
# Chromium inside the network namespace $SB_NETNS. playwright-core starts this
# in place of the browser (tests/netns/netns.mjs, Netns.chromium()); `exec`
# keeps the process id and the pipes playwright talks to Chromium over.
set -eu
exec /sbin/ip netns exec "$SB_NETNS" "${SB_CHROMIUM:-/usr/bin/chromium}" "$@"
