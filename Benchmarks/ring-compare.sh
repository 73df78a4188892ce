#!/bin/sh
# Interleaved comparison of DropOldestRing, the C++ Vyukov queue and a Mutex
# array ring: builds ring-compare in release mode and runs every workload on
# every queue in turn, ROUNDS times, then prints medians and Swift/C++ ratios.
#
#   ./ring-compare.sh [ROUNDS [ELEMENTS_PER_PRODUCER]]     (defaults: 7, 4000000)
#
# The machine should be otherwise idle: on two cores, anything else running
# shows up directly in the figures.
set -eu
cd "$(dirname "$0")"
rounds="${1:-7}"
elements="${2:-4000000}"
swift build -c release --product ring-compare >&2
exec .build/release/ring-compare "$rounds" "$elements"
