#!/usr/bin/env bash
# Installs Debian's chromium for the console's browser test (playwright-core drives it with executablePath
# /usr/bin/chromium: Playwright's own browser download is not used). Idempotent: nothing to do when /usr/bin/chromium
# runs. Safe when several test runs call it at once: the check-and-install holds a flock (like tools/chain/install.sh).
# Pinned where Debian allows: CHROMIUM_VERSION=<apt version> installs that version; otherwise the release's current one.
# Prints one line; exit 3 when chromium cannot be installed here (not root, no apt-get, or apt failed): the test is then
# reported skipped with that line as the reason.
set -euo pipefail
dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if /usr/bin/chromium --version >/dev/null 2>&1; then
  echo "chromium present: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
  exit 0
fi
command -v apt-get >/dev/null || { echo "install-chromium: no apt-get on this machine, and no /usr/bin/chromium" >&2; exit 3; }
[[ "$(id -u)" == 0 ]] || { echo "install-chromium: /usr/bin/chromium is missing and installing it needs root (apt-get install chromium)" >&2; exit 3; }
exec 9>"$dir/.install-chromium.lock"
flock 9
if /usr/bin/chromium --version >/dev/null 2>&1; then
  echo "chromium present: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
  exit 0
fi
pkg="chromium${CHROMIUM_VERSION:+=$CHROMIUM_VERSION}"
log="$(mktemp)"
if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" fonts-dejavu-core; } >"$log" 2>&1; then
  echo "install-chromium: apt-get install $pkg failed: $(tail -1 "$log")" >&2
  rm -f "$log"
  exit 3
fi
rm -f "$log"
echo "chromium installed: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
