/**
 * Kernel VXLAN offload: the `flannel.<VNI>` device, its address, and the
 * neighbour/FDB/route entries per peer, programmed as flanneld's vxlan
 * backend programs them.
 *
 * Why iproute2 (`ip`/`bridge`, `-j` to read, `-batch -` to write) and not a
 * netlink library from npm — measured on this machine (2 shared cores,
 * kernel 6.18, iproute2 6.1, Node 20), 100 peers = 300 entries (neighbour +
 * FDB + onlink route each) added, then removed, in a namespace, 3 runs:
 *
 *   iproute2 -batch (3 processes each way)   add 12–19 ms   remove 10–14 ms
 *   iproute2, one process per entry          add 706–931 ms remove 646–956 ms
 *   npm `netlink` 0.3.0, one request at a time add 18–21 ms remove 11–24 ms
 *   npm `netlink` 0.3.0, 300 requests in flight: the process aborted
 *     ("terminate called after throwing an instance of 'Napi::Error'"),
 *     uncatchable from JS.
 *
 * Batched iproute2 is as fast as the library and brings no
 * dependency: iproute2 is on every node flannel runs on and its JSON is
 * stable. The npm side: `netlink` (the only rtnetlink binding, ~2k
 * downloads a month, last release Dec 2024, "early stage; API
 * compatibility is not maintained") ships a native addon, lacks typed
 * fields we need (RTNH_F_ONLINK had to be passed as a raw bit), and its
 * failure mode above would take the daemon down; the only other npm hit,
 * `netlinkwrapper`, is a TCP/UDP socket library. `ip -d -j link` also
 * gives exactly what the tests compare against flanneld's device.
 *
 * One iproute2 trap shapes peers.ts: `ip neigh del` of a missing entry
 * exit()s the whole batch even under -force, so deletions are computed
 * from a fresh read of the kernel and only name entries that exist.
 *
 * Through this module (same machine): syncPeers 0→100 peers 21–31 ms,
 * 100→100 (no change) 11–17 ms, 100→0 19–35 ms; addPeer ~7 ms and
 * removePeer ~28 ms each (it reads the kernel state first, so that it
 * deletes only entries that exist). A burst of lease events is one
 * syncPeers with the full list, not many add/remove calls.
 *
 * What the daemon calls (Mode kernel, or auto when canCreateVxlan()):
 *   ensureVxlanDevice → setDeviceAddress → syncPeers(all vxlan leases)
 *   → watchDevice(onGone: ensure again, setDeviceAddress, syncPeers, watch)
 *   lease added: addPeer; lease removed: removePeer; lease changed
 *   (PublicIP or VtepMAC): removePeer(old) then addPeer(new), or syncPeers.
 */
export {
  ensureVxlanDevice,
  setDeviceAddress,
  watchDevice,
  canCreateVxlan,
  readLink,
  parseLinkFacts,
  vxlanIncompat,
  vxlanCreateArgs,
  vxlanDeviceName,
  VNI_MAX,
} from './vxlan-device.js';
export type { VxlanDeviceOptions, EnsureResult, LinkFacts, DeviceWatch, WatchOptions } from './vxlan-device.js';
export {
  addPeer,
  removePeer,
  syncPeers,
  readPeerState,
  parsePeerState,
  diffPeers,
  peerEntries,
  directRoutes,
  WEFT_ROUTE_PROTO,
} from './peers.js';
export type { VxlanPeer, PeerLink, PeerEntries, KernelPeerState, KernelRoute, PeerChanges } from './peers.js';
export { parseMac, formatMac, randomVtepMac, checkVtepMac } from './mac.js';
export { iproute, iprouteRaw, iprouteJson, iprouteBatch, checkDevName, linkExists } from './iproute.js';
export {
  planHostRoutes, applyHostRoutes, readMainRoutes, isOurRoute, ensureBlackholeRoute, removeBlackholeRoute,
} from './host-routes.js';
export type { HostRoute, MainRoute } from './host-routes.js';
