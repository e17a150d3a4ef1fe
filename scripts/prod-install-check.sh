#!/usr/bin/env bash
# CI: proves that a production-only install built from a clean tree starts.
# Copies the repository's files (git ls-files: tracked plus untracked
# non-ignored, so a fresh clone and a work tree give the same set) to a temp
# dir, runs the Dockerfile's two steps — scripts/docker-build.sh, then
# scripts/docker-install.sh into a separate prefix — and runs the installed
# weft: `version` must print the package version, `--help` must exit 0, and
# flanneld's arguments as manifests write them must parse. Exits non-zero
# on the first failure. Takes about a minute (npm ci twice, node-gyp, tsc).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/weft-prod-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "prod-install-check: FAIL: $*" >&2; exit 1; }

mkdir -p "$work/src"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard) |
  (cd "$repo" && xargs -0 cp --parents -t "$work/src" 2>/dev/null || true)
[ -f "$work/src/package.json" ] || fail "copying the tree from $repo failed"
for f in node_modules dist native/build; do
  [ ! -e "$work/src/$f" ] || fail "$f was copied: the tree is not clean (check .gitignore)"
done

echo "prod-install-check: build (scripts/docker-build.sh)" >&2
bash "$work/src/scripts/docker-build.sh" "$work/src" >"$work/build.log" 2>&1 ||
  { tail -n 40 "$work/build.log" >&2; fail "scripts/docker-build.sh failed"; }
echo "prod-install-check: production install (scripts/docker-install.sh)" >&2
bash "$work/src/scripts/docker-install.sh" "$work/src" "$work/opt/weft" "$work/bin" >"$work/install.log" 2>&1 ||
  { tail -n 40 "$work/install.log" >&2; fail "scripts/docker-install.sh failed"; }

prod="$work/opt/weft"
# Production only: no dev-only dependency, no TypeScript sources, no tests.
# (Not @types/*: @kubernetes/client-node lists some as its dependencies.)
for d in typescript kubernetes-models dockerfile-ast benchmark; do
  [ ! -e "$prod/node_modules/$d" ] || fail "dev dependency $d is in the production install"
done
[ ! -e "$prod/src" ] && [ ! -e "$prod/dist/test" ] || fail "sources or tests were installed"
want="$(node -p "require('$repo/package.json').version")"

# Run from elsewhere, through the bin link, as the image's ENTRYPOINT does.
cd "$work"
got=$("$work/bin/weft" version) || fail "weft version exited $?"
[ "$got" = "$want" ] || fail "weft version printed '$got', expected '$want'"
"$work/bin/weft" --help >"$work/help.txt" || fail "weft --help exited $?"
grep -q -- '--kube-subnet-mgr' "$work/help.txt" || fail "weft --help does not list --kube-subnet-mgr"
node "$prod/bin/weft.js" help >/dev/null || fail "node bin/weft.js help exited $?"
# flanneld's arguments as kube-flannel.yml writes them, then --version.
got=$("$work/bin/weft" --ip-masq --kube-subnet-mgr --iface=eth1 --version) || fail "flanneld's arguments were rejected"
[ "$got" = "$want" ] || fail "--version printed '$got'"
# The addon the builder compiled loads in the production tree.
(cd "$prod" && node -e "import('./dist/src/native/index.js').then((m) => { m.requireNative(); })") ||
  fail "the native addon does not load from $prod"
size=$(du -sh "$prod" | cut -f1)
echo "prod-install-check: ok: $want starts from a production-only install ($size in $prod)"
