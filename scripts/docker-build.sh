#!/usr/bin/env bash
# The Dockerfile's builder step, also run by CI outside Docker
# (scripts/prod-install-check.sh): from a clean tree, install every
# dependency exactly as locked, build the C addon against this Node's
# headers, compile the TypeScript. Needs python3, make, g++.
#
#   scripts/docker-build.sh [TREE]     (default: the repository holding this script)
#
# Scripts run as explicit steps instead of through `npm ci`'s install and
# prepare hooks so a failing step names itself; dependencies' own install
# scripts are skipped (--ignore-scripts): none of them is needed to run weft
# (the only one, protobufjs's postinstall, checks its CLI's versions).
set -euo pipefail
tree="${1:-$(dirname "$0")/..}"
cd "$tree"
echo "docker-build: node $(node --version), npm $(npm --version) in $(pwd)" >&2
npm ci --ignore-scripts --no-audit --no-fund
node scripts/build-native.mjs
test -f native/build/Release/weft.node
./node_modules/.bin/tsc -p .
test -f dist/src/cli/main.js
