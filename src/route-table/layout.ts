/**
 * Memory layout of the route table's SharedArrayBuffer, shared by the
 * writer (main thread) and the readers (workers). A reader gets nothing but
 * the buffer, so every size it needs is in the control block at offset 0.
 *
 * ```
 * +--------------------------------------------------------------+ 0
 * | control: Int32[CTRL_WORDS]                                   |
 * |   [MAGIC] [VERSION] [EPOCH] [MAX_ROUTES] [MAX_PEERS]         |
 * |   [NODE_CAP] [HASH_SIZE] ... [READER_ACK0 .. +MAX_READERS)   |
 * +--------------------------------------------------------------+
 * | generation 0 (used while epoch is even)                      |
 * |   header  Int32[GEN_HEADER_WORDS]                            |
 * |   top     Int32[2 * 65536]: per /16 block [start node, best] |
 * |   nodes   Int32[NODE_WORDS * nodeCap]: [key, meta, c0, c1]   |
 * |   peers   addr, port, subnet, prefixLen Uint32[maxPeers],    |
 * |           mac Uint8[6*maxPeers], hash Int32[hashSize]        |
 * +--------------------------------------------------------------+
 * | generation 1 (used while epoch is odd), same layout          |
 * +--------------------------------------------------------------+
 * ```
 * Every section starts on an 8-byte boundary.
 */

/** Reader slots in the control block; one per data-path worker. */
export const MAX_READERS = 64;

/** Control block word indexes (Int32). */
export const CTRL = {
  MAGIC: 0,
  VERSION: 1,
  EPOCH: 2,
  MAX_ROUTES: 3,
  MAX_PEERS: 4,
  NODE_CAP: 5,
  HASH_SIZE: 6,
  READER_ACK0: 16,
} as const;
export const CTRL_WORDS = CTRL.READER_ACK0 + MAX_READERS;

/** "WRT1": tells a reader that it was handed a route table buffer. */
export const MAGIC = 0x57525431;
export const LAYOUT_VERSION = 1;

/** Reader ack slot value meaning "no reader here". */
export const READER_INACTIVE = -1;

/** Per-generation header word indexes (Int32). */
export const GEN = {
  /** Local subnet network address (read with >>> 0). */
  LOCAL_NET: 0,
  /** Local subnet prefix length, -1 when none was set. */
  LOCAL_LEN: 1,
  ROUTE_COUNT: 2,
  /** One past the highest peer slot in use (data path may iterate up to it). */
  PEER_SLOTS: 3,
  NODE_COUNT: 4,
  /** Trie root node index, -1 when the table is empty. */
  ROOT: 5,
} as const;
export const GEN_HEADER_WORDS = 8;

export const MAC_LEN = 6;

/**
 * The first TOP_BITS of an address index the top table directly, so a
 * lookup starts at the first trie node of length ≥ 16 on its path instead
 * of at the root (random 50 000 /24s: from ~17 node visits to ~2). One
 * fixed 512 KiB table per generation, not one 256-wide node per /16.
 */
export const TOP_BITS = 16;
export const TOP_SIZE = 1 << TOP_BITS;

/**
 * A trie node is NODE_WORDS Int32 words, all in one cache line:
 *   [N_KEY]   prefix bits, as an int32 bit pattern;
 *   [N_META]  prefix length (low 6 bits) | (peer slot + 1) << 6, 0 = no route;
 *   [N_CHILD] child when the bit after the prefix is 0, [N_CHILD + 1] when 1.
 * Interleaved rather than one array per field: a lookup touches one cache
 * line per node instead of five, which is most of its cost on big tables.
 */
export const NODE_WORDS = 4;
export const N_KEY = 0;
export const N_META = 1;
export const N_CHILD = 2;
export const META_LEN_BITS = 6;
export const META_LEN_MASK = 63;

export const DEFAULT_MAX_ROUTES = 65536;
export const DEFAULT_MAX_PEERS = 16384;

/** Byte offsets of one generation's arrays, relative to the buffer start. */
export interface GenLayout {
  header: number;
  top: number;
  nodes: number;
  peerAddr: number;
  peerPort: number;
  peerSubnet: number;
  peerPrefixLen: number;
  peerMac: number;
  hash: number;
}

export interface Layout {
  maxRoutes: number;
  maxPeers: number;
  /** Trie nodes: each route adds at most one route node and one branch node. */
  nodeCap: number;
  /** Peer hash buckets: power of two ≥ 2 × maxPeers, so probes stay short. */
  hashSize: number;
  gens: [GenLayout, GenLayout];
  byteLength: number;
}

function align8(n: number): number {
  return (n + 7) & ~7;
}

export function hashSizeFor(maxPeers: number): number {
  let size = 2;
  while (size < 2 * maxPeers) size *= 2;
  return size;
}

export function computeLayout(maxRoutes: number, maxPeers: number): Layout {
  const nodeCap = 2 * maxRoutes;
  const hashSize = hashSizeFor(maxPeers);
  let off = align8(CTRL_WORDS * 4);
  const gen = (): GenLayout => {
    const take = (bytes: number): number => {
      const at = off;
      off = align8(off + bytes);
      return at;
    };
    return {
      header: take(GEN_HEADER_WORDS * 4),
      top: take(2 * TOP_SIZE * 4),
      nodes: take(NODE_WORDS * nodeCap * 4),
      peerAddr: take(maxPeers * 4),
      peerPort: take(maxPeers * 4),
      peerSubnet: take(maxPeers * 4),
      peerPrefixLen: take(maxPeers * 4),
      peerMac: take(maxPeers * MAC_LEN),
      hash: take(hashSize * 4),
    };
  };
  const g0 = gen();
  const g1 = gen();
  return { maxRoutes, maxPeers, nodeCap, hashSize, gens: [g0, g1], byteLength: off };
}

/** Netmask by prefix length as int32 bit patterns; a lookup table so no branch for /0. */
export const MASKS: Int32Array = (() => {
  const m = new Int32Array(33);
  for (let len = 1; len <= 32; len++) m[len] = (0xffffffff << (32 - len)) | 0;
  return m;
})();

/** Typed-array views over one generation. Created once, never per lookup. */
export interface GenViews {
  header: Int32Array;
  /** Block b (addr >>> 16): [2b] first node of length ≥ 16 or -1, [2b + 1] best peer slot above it or -1. */
  top: Int32Array;
  nodes: Int32Array;
  peerAddr: Uint32Array;
  peerPort: Uint32Array;
  peerSubnet: Uint32Array;
  peerPrefixLen: Uint32Array;
  peerMac: Uint8Array;
  hash: Int32Array;
}

export function genViews(sab: SharedArrayBuffer, l: Layout, g: 0 | 1): GenViews {
  const o = l.gens[g];
  return {
    header: new Int32Array(sab, o.header, GEN_HEADER_WORDS),
    top: new Int32Array(sab, o.top, 2 * TOP_SIZE),
    nodes: new Int32Array(sab, o.nodes, NODE_WORDS * l.nodeCap),
    peerAddr: new Uint32Array(sab, o.peerAddr, l.maxPeers),
    peerPort: new Uint32Array(sab, o.peerPort, l.maxPeers),
    peerSubnet: new Uint32Array(sab, o.peerSubnet, l.maxPeers),
    peerPrefixLen: new Uint32Array(sab, o.peerPrefixLen, l.maxPeers),
    peerMac: new Uint8Array(sab, o.peerMac, l.maxPeers * MAC_LEN),
    hash: new Int32Array(sab, o.hash, l.hashSize),
  };
}

/**
 * Bucket of a peer address in a hash of `hashMask + 1` buckets. The
 * multiply-xorshift mix (murmur3's finalizer, first half) spreads
 * consecutive addresses — peers on one underlay /24 — instead of filling
 * one run of buckets, which would make linear probing slow. Exported for
 * the collision tests.
 */
export function peerHashBucket(addr: number, hashMask: number): number {
  let h = addr ^ (addr >>> 16);
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h & hashMask;
}
