#!/usr/bin/env bash
# Installs the console's pinned npm packages (Vite, TypeScript, ESLint, Vitest, the chart libraries, Scalar,
# playwright-core) into console/node_modules with `npm ci`, from the committed package-lock.json.
# Idempotent: skipped when the lock file installed last equals package-lock.json (a stamp in node_modules).
# Safe when several processes (parallel builds and test runs) call it at once: the whole check-and-install holds a flock.
# Prints one line. Exit 2 when node or npm is missing.
set -euo pipefail
dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$dir"
command -v node >/dev/null || { echo "console/install.sh: node is not installed (the console needs Node 20+ and npm; or build with -p:ConsoleBuild=false)" >&2; exit 2; }
command -v npm >/dev/null || { echo "console/install.sh: npm is not installed (the console needs Node 20+ and npm; or build with -p:ConsoleBuild=false)" >&2; exit 2; }
exec 9>"$dir/.install.lock"
flock 9
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
stamp="node_modules/.computegrid-lock.sha256"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x node_modules/.bin/vite ]]; then
  echo "console packages up to date in $dir/node_modules"
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error >/dev/null
echo "$want" > "$stamp"
echo "console packages installed in $dir/node_modules (lock ${want:0:12})"
