#!/usr/bin/env bash
# Installs the pinned chain tools (Anvil, solc, the x402 clients) into tools/chain/node_modules with `npm ci`.
# Idempotent: skipped when the lock file installed last equals package-lock.json (a stamp in node_modules).
# Safe when several processes (parallel test runs) call it at once: the whole check-and-install holds a flock.
# Prints one line.
set -euo pipefail
dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$dir"
command -v node >/dev/null || { echo "install.sh: node is not installed (need Node 20+ and npm)" >&2; exit 2; }
command -v npm >/dev/null || { echo "install.sh: npm is not installed (need Node 20+ and npm)" >&2; exit 2; }
exec 9>"$dir/.install.lock"
flock 9
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
stamp="node_modules/.computegrid-lock.sha256"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil ]]; then
  echo "chain tools up to date in $dir/node_modules"
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error >/dev/null
echo "$want" > "$stamp"
echo "chain tools installed in $dir/node_modules (lock ${want:0:12})"
