#!/bin/sh
# /usr/sbin/iptables-wrapper in weft's image: iptables, iptables-save,
# iptables-restore and their ip6tables twins until the first call, which
# picks the host's iptables mode (legacy or nft) the way flannel's image does
# (kubernetes-sigs/iptables-wrappers), points Debian's alternatives at that
# mode's binaries and runs the command with them. Later calls go straight to
# the chosen binaries. The container must use the host's mode: rules written
# in the other one are invisible to kube-proxy and the host, yet still apply.
#
#   iptables-wrapper install        (image build) route the six commands here
#   iptables-wrapper detect         print the mode the host uses
#   WEFT_IPTABLES_MODE=legacy|nft   skip the detection
#
# POSIX sh: the image's /bin/sh is dash.
set -eu
sbin=/usr/sbin
cmds="iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore"

detect() {
  # kubelet (1.17+) creates KUBE-IPTABLES-HINT or KUBE-KUBELET-CANARY in the
  # mangle table in the host's mode. nft first, and only that table: cheap,
  # and the common case.
  hint='^:(KUBE-IPTABLES-HINT|KUBE-KUBELET-CANARY)'
  for s in iptables-nft-save ip6tables-nft-save; do
    if "$sbin/$s" -t mangle 2>/dev/null | grep -Eq "$hint"; then echo nft; return; fi
  done
  # No -t with legacy: naming a table makes the kernel create it.
  for s in iptables-legacy-save ip6tables-legacy-save; do
    if "$sbin/$s" 2>/dev/null | grep -Eq "$hint"; then echo legacy; return; fi
  done
  # No kubelet on this host (flannel's wrapper would say nft here): the mode
  # that holds more rules, as the wrapper did before the hint chains existed,
  # so a docker host on legacy keeps its rules next to ours.
  nl=$({ "$sbin/iptables-legacy-save" || true; "$sbin/ip6tables-legacy-save" || true; } 2>/dev/null | grep -c '^-' || true)
  nn=$({ "$sbin/iptables-nft-save" || true; "$sbin/ip6tables-nft-save" || true; } 2>/dev/null | grep -c '^-' || true)
  if [ "${nl:-0}" -gt "${nn:-0}" ]; then echo legacy; else echo nft; fi
}

case "${1:-}" in
install)
  # Debian's iptables package manages these names with update-alternatives
  # (iptables and ip6tables, each with -save and -restore as slaves).
  for v in iptables ip6tables; do
    update-alternatives --quiet --install "$sbin/$v" "$v" "$sbin/iptables-wrapper" 100 \
      --slave "$sbin/$v-restore" "$v-restore" "$sbin/iptables-wrapper" \
      --slave "$sbin/$v-save" "$v-save" "$sbin/iptables-wrapper"
    update-alternatives --quiet --set "$v" "$sbin/iptables-wrapper"
  done
  for c in $cmds; do
    [ "$(readlink -f "$sbin/$c")" = "$sbin/iptables-wrapper" ] || { echo "iptables-wrapper: $sbin/$c is not routed here" >&2; exit 1; }
  done
  for m in legacy nft; do
    "$sbin/iptables-$m" --version >/dev/null || { echo "iptables-wrapper: $sbin/iptables-$m is missing" >&2; exit 1; }
  done
  exit 0
  ;;
detect)
  detect
  exit 0
  ;;
esac

name=$(basename "$0")
case " $cmds " in
*" $name "*) ;;
*) echo "iptables-wrapper: run as one of: $cmds (or with install or detect), not as $name" >&2; exit 2 ;;
esac

mode=${WEFT_IPTABLES_MODE:-}
case "$mode" in
legacy | nft) ;;
'') mode=$(detect) ;;
*) echo "iptables-wrapper: WEFT_IPTABLES_MODE must be legacy or nft, not '$mode'" >&2; exit 2 ;;
esac

# Two first calls at once both detect the same mode; only one switches.
if [ -w /run ]; then exec 9>/run/iptables-wrapper.lock; flock 9 || true; fi
if [ "$(readlink -f "$sbin/iptables")" = "$sbin/iptables-wrapper" ]; then
  for v in iptables ip6tables; do
    if ! update-alternatives --quiet --set "$v" "$sbin/$v-$mode" >/dev/null 2>&1; then
      # A read-only root file system: every call detects again, but still runs the right binary.
      echo "iptables-wrapper: cannot switch $v to $mode with update-alternatives (read-only root file system?); running $sbin/$v-$mode directly" >&2
      break
    fi
  done
fi
exec 9>&-

# iptables-save -> iptables-legacy-save: Debian's names for each mode's binaries.
case "$name" in
ip6tables*) exec "$sbin/ip6tables-$mode${name#ip6tables}" "$@" ;;
*) exec "$sbin/iptables-$mode${name#iptables}" "$@" ;;
esac
