#!/usr/bin/env bash
# Quick start: installs what is missing, builds ringcap (release), and records a 10-second demo
# from two test-pattern cameras into ./captures. No camera needed. The cameras are given a fixed
# position (Kiel harbour), so the frames carry one without a gpsd.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v swift >/dev/null; then
  echo "quickstart: no Swift toolchain on PATH. Install Swift 6.1 or newer for Linux (see swift.org/install), then run this again." >&2
  exit 1
fi
bash scripts/install-deps.sh
swift build -c release
.build/release/ringcap record \
  --camera front=test:1280x720@15 --camera rear=test:640x480@30 \
  --gps fixed:54.3233,10.1228,5 \
  --out ./captures --duration 10 --stats-json ./captures/stats.json
echo
echo "Recorded into ./captures:"
find ./captures -name '*.jpg' | sort | sed -n '1p;$p'
echo "$(find ./captures -name '*.jpg' | wc -l) frames; summary in ./captures/stats.json"
