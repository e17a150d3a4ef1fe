/**
 * IPv4 longest-prefix-match route table in one SharedArrayBuffer: written
 * by the control plane (RouteTableWriter), read by data-path workers
 * (RouteTableReader). Protocol and reasoning: writer.ts.
 */
export { RouteTableWriter, type PeerInfo, type RouteTableOptions } from './writer.js';
export { RouteTableReader } from './reader.js';
export { MAX_READERS, MAC_LEN, DEFAULT_MAX_PEERS, DEFAULT_MAX_ROUTES, peerHashBucket } from './layout.js';
