/**
 * The interface every lease store implements (local directory, etcd v3,
 * Kubernetes node objects). The semantics are flannel's etcd ones
 * (docs/design.md §1.2), so the control plane does not care
 * which store it talks to.
 */
import type { NetConf } from '../config/net-conf.js';
import type { Ipv4Prefix } from '../wire/ipv4-addr.js';
import type { Lease, LeaseAttrs } from './lease.js';

/**
 * The part of the parsed net-conf.json a lease store needs. A full NetConf
 * (src/config/net-conf.ts) is one; stores and their tests need not build
 * the rest.
 */
export type LeaseNetConf = Pick<NetConf, 'network' | 'subnetLen' | 'subnetMin' | 'subnetMax'>;

export type PeerEvent = { type: 'added' | 'changed'; lease: Lease } | { type: 'removed'; lease: Lease };

export interface AcquireOptions {
  attrs: LeaseAttrs;
  /** The subnet from the old subnet.env, if any. */
  previous: Ipv4Prefix | null;
  /**
   * The PublicIP this node published with `previous` (weft's note beside
   * subnet.env), if any: a lease of `previous` still held by it is ours from
   * before the node's address changed, and is taken over.
   */
  previousPublicIp?: number | null;
}

export interface LeaseStore {
  /** Failed reads and watches of the store since it was made (each is retried): for /metrics. */
  readonly errors: number;
  /** Where getNetworkConfig reads, for messages: a file path, or "etcd key <prefix>/config". */
  readonly configSource: string;
  /** The net-conf JSON text (local: read from a file; etcd: <prefix>/config). */
  getNetworkConfig(): Promise<string>;
  /**
   * Our lease: reuse one held by the same PublicIP, else `previous` if
   * free, else a random pick. Throws WeftError 'ENOSUBNET' ("out of
   * subnets") when full.
   */
  acquire(conf: LeaseNetConf, opts: AcquireOptions): Promise<Lease>;
  /** Extends our lease by the TTL; throws WeftError 'EREVOKED' when it is no longer ours. */
  renew(lease: Lease): Promise<Lease>;
  /**
   * Current peers (every lease but ours) as one batch of 'added' events —
   * delivered even when empty, so the caller knows the first listing is
   * in — then changes; returns a stop function. `onRevoked` is called once
   * if our own lease disappears (or expires, or is taken over); the watch
   * stops after that.
   */
  watch(own: Lease, onEvents: (events: PeerEvent[]) => void, onRevoked: () => void): () => void;
  release(lease: Lease): Promise<void>;
  close(): Promise<void>;
}
