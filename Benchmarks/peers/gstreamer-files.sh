#!/usr/bin/env bash
# ringcap against GStreamer on the same two 1280x720 H.264 files, interleaved, on this machine:
# frames/s of each, and their ratio round by round.
#
#   bash Benchmarks/peers/gstreamer-files.sh [ROUNDS] [RINGCAP_BINARY]
#
# ringcap: `ringcap record` of both files at once (two cameras, default settings, JPEG quality 85).
# GStreamer: one process per file, both at once, decoding with avdec_h264 and encoding at the same
# quality: filesrc ! qtdemux ! h264parse ! avdec_h264 ! videoconvert ! jpegenc quality=85 !
# multifilesink. Both write one JPEG a frame into a tmpfs folder (/dev/shm), removed after each run.
# The files are the bench's own (`ringcap bench --scenario files` makes them on first use, in
# ~/.cache/ringcap-bench). GStreamer is a peer to measure against, not a dependency of ringcap:
# this script needs gstreamer1.0-tools, gstreamer1.0-libav and gstreamer1.0-plugins-{base,good}.
set -euo pipefail
rounds=${1:-5}
ringcap=${2:-"$(dirname "$0")/../../.build/release/ringcap"}
cache="$HOME/.cache/ringcap-bench"
a="$cache/h264-1280x720-1800f-a.mp4"
b="$cache/h264-1280x720-1800f-b.mp4"
command -v gst-launch-1.0 >/dev/null || { echo "needs gst-launch-1.0: apt-get install gstreamer1.0-tools gstreamer1.0-libav" >&2; exit 1; }
[[ -x "$ringcap" ]] || { echo "no ringcap binary at $ringcap (swift build -c release)" >&2; exit 1; }
if [[ ! -f "$a" || ! -f "$b" ]]; then "$ringcap" bench --scenario files --seconds 1 >/dev/null 2>&1 || true; fi
frames_of() { ffprobe -v error -count_packets -select_streams v:0 -show_entries stream=nb_read_packets -of csv=p=0 "$1"; }
total=$(( $(frames_of "$a") + $(frames_of "$b") ))
work=$(mktemp -d /dev/shm/ringcap-peer.XXXXXX)
trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }

run_ringcap() {
  local t0 t1
  t0=$(now)
  "$ringcap" record --camera a="$a" --camera b="$b" --out "$work/rc" --gps none --keep-free 0 --log-level error 2>/dev/null
  t1=$(now)
  local n; n=$(find "$work/rc" -name '*.jpg' | wc -l)
  rm -rf "$work/rc"
  [[ $n -eq $total ]] || { echo "ringcap wrote $n of $total frames" >&2; exit 1; }
  echo "$t0 $t1" | awk -v n="$total" '{ printf "%.1f", n / ($2 - $1) }'
}

run_gstreamer() {
  local t0 t1
  mkdir -p "$work/gst-a" "$work/gst-b"
  t0=$(now)
  gst-launch-1.0 -q filesrc location="$a" ! qtdemux ! h264parse ! avdec_h264 ! videoconvert ! jpegenc quality=85 ! multifilesink location="$work/gst-a/%06d.jpg" &
  local pa=$!
  gst-launch-1.0 -q filesrc location="$b" ! qtdemux ! h264parse ! avdec_h264 ! videoconvert ! jpegenc quality=85 ! multifilesink location="$work/gst-b/%06d.jpg" &
  local pb=$!
  wait $pa $pb
  t1=$(now)
  local n; n=$(find "$work/gst-a" "$work/gst-b" -name '*.jpg' | wc -l)
  rm -rf "$work/gst-a" "$work/gst-b"
  [[ $n -eq $total ]] || { echo "GStreamer wrote $n of $total frames" >&2; exit 1; }
  echo "$t0 $t1" | awk -v n="$total" '{ printf "%.1f", n / ($2 - $1) }'
}

echo "$total frames (2 files), $rounds rounds, ringcap then GStreamer in each; frames/s"
ratios=()
for ((i = 1; i <= rounds; i++)); do
  r=$(run_ringcap); g=$(run_gstreamer)
  ratio=$(awk -v r="$r" -v g="$g" 'BEGIN { printf "%.3f", r / g }')
  ratios+=("$ratio")
  echo "round $i: ringcap $r  gstreamer $g  ratio $ratio"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
echo "median ratio ringcap / GStreamer: $median"
