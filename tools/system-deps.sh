#!/usr/bin/env bash
# System packages Sillage needs, by platform. Called by the Makefile:
#   tools/system-deps.sh run    what playing needs: PortAudio, Qt's X11 (xcb) libraries
#   tools/system-deps.sh test   also what only the tests use: JACK, Pure Data, Xvfb, xdotool
# `run` never stops `make run`: a package it cannot install is named with the command to
# install it, and setup goes on (the instrument then says what is missing when it needs it).
# `test` stops when a test-only tool is missing, since the tests need them.
set -u
purpose=${1:-run}
case "$purpose" in run | test) ;; *) echo "usage: $0 run|test" >&2; exit 2 ;; esac
os=$(uname -s)

# Debian/Ubuntu. The xcb list is what PySide6's libqxcb.so links against beyond libxcb itself:
# Qt's own error names only libxcb-cursor0, which is not enough (tested under Xvfb).
DEB_RUN="libportaudio2 portaudio19-dev libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0
 libxcb-render-util0 libxcb-shape0 libxcb-xkb1 libxcb-randr0 libxcb-xinerama0 libxkbcommon-x11-0
 libegl1 libgl1 libfontconfig1 libdbus-1-3"
DEB_TEST="jackd2 puredata-core xvfb xdotool"
# Fedora: the same libraries under Fedora's names.
RPM_RUN="portaudio portaudio-devel xcb-util-cursor xcb-util-wm xcb-util-keysyms xcb-util-image
 xcb-util-renderutil libxkbcommon-x11 mesa-libEGL mesa-libGL fontconfig dbus-libs"
RPM_TEST="jack-audio-connection-kit pd xorg-x11-server-Xvfb xdotool"

give_up() {  # $1: what is missing, $2: the command that installs it
  echo "Missing system packages:$1"
  echo "Install them with: $2   (then run make again)"
  if [ "$purpose" = test ]; then exit 1; fi
  echo "Going on without them: Sillage names what it lacks when it needs it."
  exit 0
}

install_with() {  # $1: tool (apt-get|dnf), $2: missing packages
  if [ "$(id -u)" != 0 ]; then give_up "$2" "sudo $1 install$2"; fi
  echo "Installing system packages:$2"
  if [ "$1" = apt-get ]; then
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $2 >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $2 >/dev/null; } ||
      give_up "$2" "apt-get install$2"
  else
    # shellcheck disable=SC2086
    dnf install -y -q $2 >/dev/null || give_up "$2" "dnf install$2"
  fi
}

case "$os" in
  Darwin)
    # sounddevice's and rtmixer's macOS wheels bundle PortAudio; Qt uses Cocoa. Nothing to install.
    if [ "$purpose" = test ]; then
      echo "macOS: the JACK and Pure Data tests need them (they skip otherwise):"
      echo "  brew install jack pure-data"
    fi
    exit 0
    ;;
  Linux)
    if command -v dpkg-query >/dev/null && command -v apt-get >/dev/null; then
      want=$DEB_RUN
      if [ "$purpose" = test ]; then want="$want $DEB_TEST"; fi
      missing=""
      for p in $want; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
      done
      if [ -n "$missing" ]; then install_with apt-get "$missing"; fi
      exit 0
    fi
    if command -v rpm >/dev/null && command -v dnf >/dev/null; then
      want=$RPM_RUN
      if [ "$purpose" = test ]; then want="$want $RPM_TEST"; fi
      missing=""
      for p in $want; do rpm -q "$p" >/dev/null 2>&1 || missing="$missing $p"; done
      if [ -n "$missing" ]; then install_with dnf "$missing"; fi
      exit 0
    fi
    ;;
esac
echo "Sillage knows no package manager for this platform ($os); going on."
echo "It needs PortAudio (libportaudio), Qt's platform libraries for the map window, and for the"
echo "tests JACK (jackd), Pure Data (pd), Xvfb and xdotool. Install them, or expect those to fail."
if [ "$purpose" = test ]; then
  for tool in jackd pd Xvfb xdotool; do
    command -v "$tool" >/dev/null || echo "  not found: $tool"
  done
fi
exit 0
