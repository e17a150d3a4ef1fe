#!/usr/bin/env bash
# The Dockerfile's runtime install step, also run by CI outside Docker
# (scripts/prod-install-check.sh): a production-only install of weft from a
# tree that scripts/docker-build.sh has built.
#
#   scripts/docker-install.sh BUILT_TREE DEST [BIN_DIR]
#
# DEST gets package.json, the lockfile, bin/, node_modules with production
# dependencies only (npm ci --omit=dev), the compiled addon and dist/src/.
# --ignore-scripts: our own install/prepare scripts would rebuild the addon
# with node-gyp and run tsc, neither of which the runtime has or needs — the
# builder's artefacts are copied instead. With BIN_DIR, BIN_DIR/weft links
# to bin/weft.js.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 BUILT_TREE DEST [BIN_DIR]" >&2
  exit 2
fi
src=$(cd "$1" && pwd)
dest="$2"
bindir="${3:-}"
for f in package.json package-lock.json bin/weft.js native/build/Release/weft.node dist/src/cli/main.js; do
  if [ ! -e "$src/$f" ]; then
    echo "docker-install: $src/$f is missing; run scripts/docker-build.sh first" >&2
    exit 1
  fi
done
mkdir -p "$dest/native/build/Release" "$dest/dist"
dest=$(cd "$dest" && pwd)
cp "$src/package.json" "$src/package-lock.json" "$dest/"
cp -R "$src/bin" "$dest/"
cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT
(cd "$dest" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --cache "$cache")
cp "$src/native/build/Release/weft.node" "$dest/native/build/Release/"
rm -rf "$dest/dist/src"
cp -R "$src/dist/src" "$dest/dist/"
# The source maps stay (the TypeScript does not): the log names each line's
# TypeScript file and line through them (src/log.ts).
chmod 0755 "$dest/bin/weft.js"
if [ -n "$bindir" ]; then
  mkdir -p "$bindir"
  ln -sf "$dest/bin/weft.js" "$bindir/weft"
fi
echo "docker-install: weft $(node -p "require('$dest/package.json').version") installed in $dest" >&2
