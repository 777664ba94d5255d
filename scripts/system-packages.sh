#!/usr/bin/env bash
# Brings the system packages Guichet needs next to Python:
#   fonts-noto-core, fonts-dejavu-core  glyphs for ro/pl/sk/it text in PDFs
#   libharfbuzz-subset0                 WeasyPrint's fast font subsetting
#   libpango-1.0-0 libpangoft2-1.0-0    WeasyPrint's text layout
#   chromium                            the browser the end-to-end tests drive
#   zbar-tools poppler-utils            decode QR/barcodes from rendered PDFs in tests
#   gettext                             makemessages / compilemessages
# On Debian/Ubuntu as root the missing ones are installed with apt; anywhere
# else the script names them and stops.
set -euo pipefail

debs=(fonts-noto-core fonts-dejavu-core libharfbuzz-subset0 libpango-1.0-0
      libpangoft2-1.0-0 chromium zbar-tools poppler-utils gettext)

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for pkg in "${debs[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
  done
else
  echo "Not a Debian-like system. Install the equivalents of: ${debs[*]}" >&2
  exit 1
fi

[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "Missing system packages: ${missing[*]}" >&2
  echo "Install them (as root: apt-get install ${missing[*]}) and run again." >&2
  exit 1
fi
