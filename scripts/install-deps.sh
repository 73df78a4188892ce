#!/usr/bin/env bash
# Installs the Debian packages ringcap needs (Debian 12 / Raspberry Pi OS bookworm).
#   scripts/install-deps.sh          build and run
#   scripts/install-deps.sh --test   also what the tests use (ffmpeg, gpsd, exiftool, an RTSP server…)
# Installs only what is missing, so it is quick to run again. Needs root or sudo.
set -euo pipefail

build_packages=(
  pkg-config libstdc++-12-dev
  # OpenCV's lean parts: the shim uses core, imgproc, imgcodecs and videoio only.
  libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev libopencv-videoio-dev
  libjpeg62-turbo-dev # libjpeg-turbo: JPEG encoding straight from BGR, no allocation per image
  libavformat-dev libavcodec-dev libavutil-dev libswscale-dev  # streams and files, read through FFmpeg directly
  libgps-dev gpsd     # positions: libgps to read gpsd, gpsd to parse serial/network NMEA
)
test_packages=(
  ffmpeg                          # makes the test videos
  gpsd-tools gpsd-clients         # gpsfake
  libimage-exiftool-perl          # reads EXIF back independently
  python3 python3-jsonschema      # validates sidecars against the schema
  socat                           # pseudo-terminal serial ports
  strace                          # which clock each timed wait uses
  python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly   # an RTSP server on loopback
  chromium fonts-dejavu-core      # a real browser for the live page, headless
  apache2-utils                   # htpasswd -B: the login's users
  prometheus                      # promtool checks /metrics
)

wanted=("${build_packages[@]}")
[[ "${1:-}" == "--test" ]] && wanted+=("${test_packages[@]}")

missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#wanted[@]} packages present"
  exit 0
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
