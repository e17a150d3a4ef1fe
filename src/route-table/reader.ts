/**
 * Data-path side of the route table, one per worker. refresh() once per
 * batch picks up the generation the writer last published and acks it (the
 * protocol and why it is safe are at the top of writer.ts); everything else
 * reads that generation through views made once in the constructor.
 * lookup / peerByAddr / isLocal allocate nothing and never throw.
 */
import { WeftError } from '../errors.js';
import { prefixMask } from '../wire/ipv4-addr.js';
import {
  CTRL,
  CTRL_WORDS,
  GEN,
  LAYOUT_VERSION,
  MAGIC,
  MASKS,
  MAX_READERS,
  META_LEN_BITS,
  META_LEN_MASK,
  NODE_WORDS,
  N_CHILD,
  N_KEY,
  N_META,
  READER_INACTIVE,
  TOP_BITS,
  computeLayout,
  genViews,
  peerHashBucket,
  type GenViews,
} from './layout.js';

const TOP_SHIFT = 32 - TOP_BITS;

export class RouteTableReader {
  /** Epoch of the generation this reader uses (the one it last acked). */
  epoch = 0;
  // Current generation's per-peer arrays, indexed by peer slot.
  peerAddr: Uint32Array;
  peerPort: Uint32Array;
  peerSubnet: Uint32Array;
  peerPrefixLen: Uint32Array;
  /** 6 bytes per slot: the VTEP MAC of slot s is at [6s, 6s + 6). */
  peerMac: Uint8Array;
  /** Local subnet; localLen is -1 when the writer never set one. */
  localNet = 0;
  localLen = -1;
  /** Routes in the current generation. */
  routeCount = 0;
  /** One past the highest peer slot in use in the current generation. */
  peerSlots = 0;

  private readonly ctrl: Int32Array;
  private readonly ackIndex: number;
  private readonly gens: [GenViews, GenViews];
  private readonly hashMask: number;
  private localMask = 0;
  private top: Int32Array;
  private nodes: Int32Array;
  private hash: Int32Array;

  constructor(buffer: SharedArrayBuffer, slot: number) {
    if (!Number.isInteger(slot) || slot < 0 || slot >= MAX_READERS) {
      throw new RangeError(`reader slot must be 0..${MAX_READERS - 1}, got ${slot}`);
    }
    const ctrl = new Int32Array(buffer, 0, CTRL_WORDS);
    if (ctrl[CTRL.MAGIC] !== MAGIC || ctrl[CTRL.VERSION] !== LAYOUT_VERSION) {
      throw new WeftError(
        'EROUTEBUF',
        'buffer is not a route table of this weft version; pass RouteTableWriter.buffer to the worker',
      );
    }
    const layout = computeLayout(ctrl[CTRL.MAX_ROUTES] as number, ctrl[CTRL.MAX_PEERS] as number);
    this.ctrl = ctrl;
    this.ackIndex = CTRL.READER_ACK0 + slot;
    this.gens = [genViews(buffer, layout, 0), genViews(buffer, layout, 1)];
    this.hashMask = layout.hashSize - 1;
    const g = this.gens[0];
    this.peerAddr = g.peerAddr;
    this.peerPort = g.peerPort;
    this.peerSubnet = g.peerSubnet;
    this.peerPrefixLen = g.peerPrefixLen;
    this.peerMac = g.peerMac;
    this.top = g.top;
    this.nodes = g.nodes;
    this.hash = g.hash;
    this.epoch = -1; // no epoch is negative: the first refresh loads everything
    this.refresh();
  }

  /** Once per batch: load the epoch; when it moved (or our ack was cleared), ack it and switch views. No allocation. */
  refresh(): void {
    const e = Atomics.load(this.ctrl, CTRL.EPOCH);
    // Nothing new, and our ack still stands (it is re-stored should the
    // slot have been released behind this reader's back): two loads. A
    // store every batch would be a full barrier and would take the cache
    // line the other readers ack in away from them, on every packet of a
    // quiet link.
    if (e === this.epoch && Atomics.load(this.ctrl, this.ackIndex) === e) return;
    // Ack before reading anything of generation e & 1 (see writer.ts).
    Atomics.store(this.ctrl, this.ackIndex, e);
    const g = this.gens[e & 1];
    this.epoch = e;
    this.top = g.top;
    this.nodes = g.nodes;
    this.hash = g.hash;
    this.peerAddr = g.peerAddr;
    this.peerPort = g.peerPort;
    this.peerSubnet = g.peerSubnet;
    this.peerPrefixLen = g.peerPrefixLen;
    this.peerMac = g.peerMac;
    const h = g.header;
    this.routeCount = h[GEN.ROUTE_COUNT] as number;
    this.peerSlots = h[GEN.PEER_SLOTS] as number;
    const len = h[GEN.LOCAL_LEN] as number;
    this.localLen = len;
    this.localNet = (h[GEN.LOCAL_NET] as number) >>> 0;
    this.localMask = len < 0 ? 0 : prefixMask(len);
  }

  /**
   * Peer slot of the longest prefix containing addr, or -1. The top table
   * gives the first node of length ≥ 16 and the best route above it, so at
   * most 17 node visits follow (lengths 16..32).
   */
  lookup(addr: number): number {
    const nodes = this.nodes;
    // Keys are int32 bit patterns and `addr & mask` is an int32 too, so
    // the compare is exact without `>>> 0` and stays in integer registers
    // (a Uint32Array load above 2^31 would be a double).
    const top = (addr >>> TOP_SHIFT) << 1;
    let best = this.top[top + 1] as number;
    let n = this.top[top] as number;
    while (n >= 0) {
      const b = n * NODE_WORDS;
      const meta = nodes[b + N_META] as number;
      const len = meta & META_LEN_MASK;
      if ((addr & (MASKS[len] as number)) !== nodes[b + N_KEY]) break;
      if (meta > META_LEN_MASK) best = (meta >> META_LEN_BITS) - 1;
      // Child by the bit right after this node's prefix. For a /32 node the
      // shift count wraps to 31, harmlessly: a /32 has no children.
      n = nodes[b + N_CHILD + ((addr >>> (31 - len)) & 1)] as number;
    }
    return best;
  }

  /** Peer slot whose PublicIP is addr, or -1. */
  peerByAddr(addr: number): number {
    const hash = this.hash;
    const peerAddr = this.peerAddr;
    const hm = this.hashMask;
    const a = addr >>> 0;
    let b = peerHashBucket(a, hm);
    for (;;) {
      const s = hash[b] as number;
      if (s < 0) return -1;
      if (peerAddr[s] === a) return s;
      b = (b + 1) & hm;
    }
  }

  /** addr inside the local subnet (false when none is set). */
  isLocal(addr: number): boolean {
    return this.localLen >= 0 && ((addr & this.localMask) >>> 0) === this.localNet;
  }

  /** Marks this reader's slot inactive; the writer no longer waits for it. */
  release(): void {
    Atomics.store(this.ctrl, this.ackIndex, READER_INACTIVE);
  }
}
