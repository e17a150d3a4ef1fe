/**
 * Control-plane side of the route table: keeps the model (peers and routes
 * in ordinary Maps), and on commit() builds a whole generation of flat
 * typed arrays in the SharedArrayBuffer that the workers read.
 *
 * ## Epoch protocol (why a reader never sees a mix of two tables)
 *
 * The buffer holds two generations, 0 and 1. Epoch e (an Int32 in the
 * control block, only ever increased, only by the writer) means
 * "generation e & 1 is the published one". Every reader owns one ack slot.
 *
 * Reader, once per batch (refresh): `e = Atomics.load(EPOCH)`;
 * `Atomics.store(ACK[slot], e)`; then reads only generation e & 1 until the
 * next refresh. Its ack therefore always names the generation it reads, and
 * it reads nothing between the load and the store.
 *
 * Writer, commit(): with `cur = EPOCH`,
 *  1. wait until every active ack slot equals `cur`;
 *  2. write generation (cur + 1) & 1 completely;
 *  3. `Atomics.store(EPOCH, cur + 1)`.
 *
 * Why step 2 is safe: after step 1 every active reader has stored ack = cur,
 * so it has finished every batch it ran on the other generation (its reads
 * come before its ack store in program order, and Atomics are sequentially
 * consistent, so the writer observing the ack happens after those reads).
 * From then on its loads of EPOCH return cur — nothing else flips the epoch
 * and the writer is busy in step 2 — so it keeps reading generation cur & 1,
 * never (cur + 1) & 1. A reader caught between its load and its store still
 * shows its previous ack, which is not cur (else it would have loaded cur),
 * so step 1 keeps waiting for it.
 * Why step 3 publishes a whole table: the plain writes of step 2 come
 * before the Atomics.store in program order, so any reader whose
 * Atomics.load returns cur + 1 sees all of them (the store synchronizes
 * with that load). A reader that loaded cur keeps the older, untouched copy.
 * A new reader (constructor) acks whatever it loads, which is at worst the
 * published generation, never the one under construction: step 2 only ever
 * writes the unpublished one.
 * A reader that stops refreshing blocks step 1 — by design; the supervisor
 * calls releaseReader(slot) when a worker dies, which marks the slot
 * inactive (-1) and lets commit() go on.
 */
import { WeftError } from '../errors.js';
import { prefixMask } from '../wire/ipv4-addr.js';
import {
  CTRL,
  CTRL_WORDS,
  DEFAULT_MAX_PEERS,
  DEFAULT_MAX_ROUTES,
  GEN,
  LAYOUT_VERSION,
  MAC_LEN,
  MASKS,
  META_LEN_BITS,
  META_LEN_MASK,
  NODE_WORDS,
  N_CHILD,
  N_KEY,
  N_META,
  TOP_BITS,
  MAGIC,
  MAX_READERS,
  READER_INACTIVE,
  computeLayout,
  genViews,
  peerHashBucket,
  type GenViews,
  type Layout,
} from './layout.js';

export interface PeerInfo {
  /** The peer's PublicIP (outer destination), uint32 host order. */
  addr: number;
  port: number;
  /** The peer's pod subnet (network address; host bits are masked off). */
  subnet: number;
  prefixLen: number;
  /** VTEP MAC, 6 bytes; all zeros when absent. */
  mac?: Uint8Array;
}

export interface RouteTableOptions {
  maxRoutes?: number;
  maxPeers?: number;
}

interface PeerRecord {
  key: string;
  addr: number;
  port: number;
  subnet: number;
  prefixLen: number;
  mac: Uint8Array;
}

/** How long commit() sleeps between looks at the reader acks. */
const ACK_POLL_MS = 2;

// Routes in the model are keyed by one number: addr * 64 + len (< 2^38,
// exact in a double). Cheaper than string keys for 50 000 routes.
function routeKey(addr: number, len: number): number {
  return addr * 64 + len;
}

function checkUint32(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw new RangeError(`${name} must be a uint32 IPv4 address, got ${v}`);
  }
}

function checkPrefixLen(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 32) {
    throw new RangeError(`${name} must be a prefix length 0..32, got ${v}`);
  }
}

function checkCapacity(name: string, v: number, max: number): void {
  if (!Number.isInteger(v) || v < 1 || v > max) {
    throw new RangeError(`${name} must be an integer 1..${max}, got ${v}`);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class RouteTableWriter {
  readonly buffer: SharedArrayBuffer;
  private readonly layout: Layout;
  private readonly ctrl: Int32Array;
  private readonly gens: [GenViews, GenViews];

  private readonly peersByKey = new Map<string, number>();
  /** Peer records by slot; undefined = free slot. */
  private readonly peers: (PeerRecord | undefined)[] = [];
  /** Freed slots, reused last-freed first. */
  private readonly freeSlots: number[] = [];
  /** Number of routes pointing at each slot, so removePeer scans only when needed. */
  private readonly routeRefs: Int32Array;
  /** routeKey(addr, len) → peer slot. */
  private readonly routes = new Map<number, number>();
  private localNet = 0;
  private localLen = -1;
  private chain: Promise<unknown> = Promise.resolve();
  /** Ends idle readers' waits (setWake). */
  private wake: () => void = () => undefined;

  private constructor(layout: Layout) {
    this.layout = layout;
    this.buffer = new SharedArrayBuffer(layout.byteLength);
    this.ctrl = new Int32Array(this.buffer, 0, CTRL_WORDS);
    this.gens = [genViews(this.buffer, layout, 0), genViews(this.buffer, layout, 1)];
    this.routeRefs = new Int32Array(layout.maxPeers);
    const c = this.ctrl;
    c[CTRL.MAGIC] = MAGIC;
    c[CTRL.VERSION] = LAYOUT_VERSION;
    c[CTRL.MAX_ROUTES] = layout.maxRoutes;
    c[CTRL.MAX_PEERS] = layout.maxPeers;
    c[CTRL.NODE_CAP] = layout.nodeCap;
    c[CTRL.HASH_SIZE] = layout.hashSize;
    c.fill(READER_INACTIVE, CTRL.READER_ACK0, CTRL.READER_ACK0 + MAX_READERS);
    // Epoch 0 publishes generation 0: an empty table, so readers created
    // before the first commit get -1 for everything.
    this.writeGeneration(this.gens[0]);
    Atomics.store(c, CTRL.EPOCH, 0);
  }

  /** Allocates the buffer; capacity is fixed from here on. */
  static create(opts: RouteTableOptions = {}): RouteTableWriter {
    const maxRoutes = opts.maxRoutes ?? DEFAULT_MAX_ROUTES;
    const maxPeers = opts.maxPeers ?? DEFAULT_MAX_PEERS;
    // 2^24 routes = 2^25 nodes x 21 B x 2 generations ≈ 1.4 GB: a sane ceiling.
    checkCapacity('maxRoutes', maxRoutes, 1 << 24);
    checkCapacity('maxPeers', maxPeers, 1 << 22);
    return new RouteTableWriter(computeLayout(maxRoutes, maxPeers));
  }

  get epoch(): number {
    return Atomics.load(this.ctrl, CTRL.EPOCH);
  }

  peerCount(): number {
    return this.peersByKey.size;
  }

  routeCount(): number {
    return this.routes.size;
  }

  setLocalSubnet(net: number, len: number): void {
    checkUint32('net', net);
    checkPrefixLen('len', len);
    this.localNet = (net & prefixMask(len)) >>> 0;
    this.localLen = len;
  }

  /** Adds or replaces the peer under a stable key (e.g. "10.244.2.0/24"); the peer's subnet becomes a route to it. Returns its slot. */
  upsertPeer(key: string, peer: PeerInfo): number {
    checkUint32('peer.addr', peer.addr);
    if (!Number.isInteger(peer.port) || peer.port < 0 || peer.port > 65535) {
      throw new RangeError(`peer.port must be 0..65535, got ${peer.port}`);
    }
    checkUint32('peer.subnet', peer.subnet);
    checkPrefixLen('peer.prefixLen', peer.prefixLen);
    if (peer.mac !== undefined && peer.mac.length !== MAC_LEN) {
      throw new RangeError(`peer.mac must be ${MAC_LEN} bytes, got ${peer.mac.length}`);
    }
    const subnet = (peer.subnet & prefixMask(peer.prefixLen)) >>> 0;
    const newRoute = routeKey(subnet, peer.prefixLen);
    const existing = this.peersByKey.get(key);

    // Check both capacities before touching the model, so a refusal leaves
    // it as it was.
    if (existing === undefined && this.peersByKey.size >= this.layout.maxPeers) {
      throw new WeftError(
        'EROUTEFULL',
        `route table is full: ${this.layout.maxPeers} peers (maxPeers); cannot add peer ${key}. ` +
          'Raise the maxPeers option of RouteTableWriter.create().',
      );
    }
    if (!this.routes.has(newRoute)) {
      let size = this.routes.size;
      if (existing !== undefined) {
        const old = this.peers[existing] as PeerRecord;
        if (this.routes.get(routeKey(old.subnet, old.prefixLen)) === existing) size--;
      }
      if (size >= this.layout.maxRoutes) throw this.routesFull(`the subnet route of peer ${key}`);
    }

    let slot: number;
    if (existing !== undefined) {
      slot = existing;
      const old = this.peers[slot] as PeerRecord;
      const oldRoute = routeKey(old.subnet, old.prefixLen);
      if (oldRoute !== newRoute && this.routes.get(oldRoute) === slot) this.unsetRoute(oldRoute);
    } else {
      slot = this.freeSlots.length > 0 ? (this.freeSlots.pop() as number) : this.peers.length;
      this.peersByKey.set(key, slot);
    }
    const mac = new Uint8Array(MAC_LEN);
    if (peer.mac !== undefined) mac.set(peer.mac);
    this.peers[slot] = { key, addr: peer.addr, port: peer.port, subnet, prefixLen: peer.prefixLen, mac };
    this.setRoute(newRoute, slot);
    return slot;
  }

  /** Removes the peer, its subnet route and every extra route pointing at it. */
  removePeer(key: string): boolean {
    const slot = this.peersByKey.get(key);
    if (slot === undefined) return false;
    const rec = this.peers[slot] as PeerRecord;
    const own = routeKey(rec.subnet, rec.prefixLen);
    if (this.routes.get(own) === slot) this.unsetRoute(own);
    if (this.routeRefs[slot] !== 0) {
      for (const [k, s] of this.routes) if (s === slot) this.unsetRoute(k);
    }
    this.peersByKey.delete(key);
    this.peers[slot] = undefined;
    this.freeSlots.push(slot);
    return true;
  }

  /** Extra routes (prefix → existing peer slot), for tests and DirectRouting-style uses. */
  addRoute(addr: number, len: number, peerSlot: number): void {
    checkUint32('addr', addr);
    checkPrefixLen('len', len);
    if (!Number.isInteger(peerSlot) || this.peers[peerSlot] === undefined) {
      throw new RangeError(`peer slot ${peerSlot} holds no peer; add the peer with upsertPeer() first`);
    }
    const k = routeKey((addr & prefixMask(len)) >>> 0, len);
    if (!this.routes.has(k) && this.routes.size >= this.layout.maxRoutes) {
      throw this.routesFull('the route');
    }
    this.setRoute(k, peerSlot);
  }

  deleteRoute(addr: number, len: number): boolean {
    checkUint32('addr', addr);
    checkPrefixLen('len', len);
    const k = routeKey((addr & prefixMask(len)) >>> 0, len);
    if (!this.routes.has(k)) return false;
    this.unsetRoute(k);
    return true;
  }

  /**
   * Builds the inactive generation from the current model and flips the
   * epoch; resolves with the new epoch once published. Calls are
   * serialized. Waits (polling) for every active reader to acknowledge the
   * current epoch first — see the protocol at the top of this file.
   */
  commit(): Promise<number> {
    const run = this.chain.then(() => this.commitNow());
    // Keep the chain alive after a failure so later commits still run.
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Marks a reader slot inactive (its worker died); unblocks commit(). */
  releaseReader(slot: number): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= MAX_READERS) {
      throw new RangeError(`reader slot must be 0..${MAX_READERS - 1}, got ${slot}`);
    }
    Atomics.store(this.ctrl, CTRL.READER_ACK0 + slot, READER_INACTIVE);
  }

  /**
   * `wake` is called when a commit finds a reader behind: idle workers ack
   * only after their poll returns, so it ends their wait (an eventfd).
   */
  setWake(wake: () => void): void {
    this.wake = wake;
  }

  private async commitNow(): Promise<number> {
    const cur = Atomics.load(this.ctrl, CTRL.EPOCH);
    if (!this.allReadersAt(cur)) this.wake();
    while (!this.allReadersAt(cur)) await sleep(ACK_POLL_MS);
    const next = (cur + 1) | 0;
    // Everything from the build to the flip is synchronous: the model
    // cannot change under it.
    this.writeGeneration(this.gens[next & 1]);
    Atomics.store(this.ctrl, CTRL.EPOCH, next);
    return next;
  }

  private allReadersAt(epoch: number): boolean {
    for (let i = 0; i < MAX_READERS; i++) {
      const a = Atomics.load(this.ctrl, CTRL.READER_ACK0 + i);
      if (a !== READER_INACTIVE && a !== epoch) return false;
    }
    return true;
  }

  private routesFull(what: string): WeftError {
    return new WeftError(
      'EROUTEFULL',
      `route table is full: ${this.layout.maxRoutes} routes (maxRoutes); cannot add ${what}. ` +
        'Raise the maxRoutes option of RouteTableWriter.create().',
    );
  }

  private setRoute(k: number, slot: number): void {
    const old = this.routes.get(k);
    if (old !== undefined) this.routeRefs[old]--;
    this.routes.set(k, slot);
    this.routeRefs[slot]++;
  }

  private unsetRoute(k: number): void {
    const old = this.routes.get(k);
    if (old === undefined) return;
    this.routeRefs[old]--;
    this.routes.delete(k);
  }

  /** Writes the whole model into generation `g` (which no reader uses). */
  private writeGeneration(g: GenViews): void {
    const h = g.header;
    h[GEN.LOCAL_NET] = this.localNet | 0;
    h[GEN.LOCAL_LEN] = this.localLen;
    h[GEN.ROUTE_COUNT] = this.routes.size;
    h[GEN.PEER_SLOTS] = this.peers.length;

    // Peers: clear everything, so a freed slot reads as zeros.
    g.peerAddr.fill(0);
    g.peerPort.fill(0);
    g.peerSubnet.fill(0);
    g.peerPrefixLen.fill(0);
    g.peerMac.fill(0);
    g.hash.fill(-1);
    const hashMask = this.layout.hashSize - 1;
    for (let s = 0; s < this.peers.length; s++) {
      const p = this.peers[s];
      if (p === undefined) continue;
      g.peerAddr[s] = p.addr;
      g.peerPort[s] = p.port;
      g.peerSubnet[s] = p.subnet;
      g.peerPrefixLen[s] = p.prefixLen;
      g.peerMac.set(p.mac, s * MAC_LEN);
      // Linear probing; two peers with the same PublicIP (a stale lease
      // beside a new one) keep the lower slot. The hash is at most half
      // full, so an empty bucket always ends the probe.
      let b = peerHashBucket(p.addr, hashMask);
      for (;;) {
        const t = g.hash[b] as number;
        if (t < 0) {
          g.hash[b] = s;
          break;
        }
        if (g.peerAddr[t] === p.addr) break;
        b = (b + 1) & hashMask;
      }
    }

    // Trie: rebuilt from scratch by insertion. A path-compressed binary
    // trie has one shape per set of prefixes, so insertion order does not
    // matter, and it needs no delete.
    // Inserted in address order, so the nodes of one /16 block end up
    // near each other in memory: on 50 000 clustered /24s lookups got ~20%
    // faster (fewer cache misses) for a few ms of sort.
    const keys = new Float64Array(this.routes.size);
    let i = 0;
    for (const k of this.routes.keys()) keys[i++] = k;
    keys.sort();
    const b = new TrieBuilder(g);
    for (i = 0; i < keys.length; i++) {
      const k = keys[i] as number;
      const len = k % 64;
      b.insert((k - len) / 64, len, this.routes.get(k) as number);
    }
    b.fillTop(g.top);
    h[GEN.NODE_COUNT] = b.count;
    h[GEN.ROOT] = b.root;
  }
}

/**
 * Path-compressed binary trie in one flat Int32Array (layout.ts, NODE_WORDS
 * per node). Node n covers the prefix key/len and holds a peer slot or none
 * (a branch node, made where two prefixes diverge); its children are chosen
 * by the address bit just after len. Children are strictly longer than
 * their parent, so a walk visits at most 33 nodes (lengths 0..32). Each
 * route adds at most two nodes (itself and one branch), hence
 * nodeCap = 2 × maxRoutes.
 */
class TrieBuilder {
  root = -1;
  count = 0;
  private readonly nodes: Int32Array;

  constructor(g: GenViews) {
    this.nodes = g.nodes;
  }

  private node(addr: number, len: number, value: number): number {
    const n = this.count++;
    const b = n * NODE_WORDS;
    this.nodes[b + N_KEY] = addr | 0;
    this.nodes[b + N_META] = len | ((value + 1) << META_LEN_BITS);
    this.nodes[b + N_CHILD] = -1;
    this.nodes[b + N_CHILD + 1] = -1;
    return n;
  }

  /** Index in `nodes` of n's child on the side of `addr`'s bit right after `len` (< 32). */
  private static childAt(n: number, addr: number, len: number): number {
    return n * NODE_WORDS + N_CHILD + ((addr >>> (31 - len)) & 1);
  }

  insert(addr: number, len: number, value: number): void {
    const nodes = this.nodes;
    if (this.root < 0) {
      this.root = this.node(addr, len, value);
      return;
    }
    // `link` is where the current node hangs: -1 = root, else an index in nodes.
    let link = -1;
    let n = this.root;
    for (;;) {
      const nKey = nodes[n * NODE_WORDS + N_KEY] as number;
      const nMeta = nodes[n * NODE_WORDS + N_META] as number;
      const nLen = nMeta & META_LEN_MASK;
      const max = nLen < len ? nLen : len;
      // Length of the common prefix of nKey and addr, capped at max.
      const diff = nKey ^ addr;
      let common = diff === 0 ? 32 : Math.clz32(diff);
      if (common > max) common = max;
      if (common === nLen) {
        if (nLen === len) {
          // Same prefix: replace the value (a branch node becomes a route).
          nodes[n * NODE_WORDS + N_META] = len | ((value + 1) << META_LEN_BITS);
          return;
        }
        // n covers the new prefix: go down.
        const c = TrieBuilder.childAt(n, addr, nLen);
        const next = nodes[c] as number;
        if (next < 0) {
          nodes[c] = this.node(addr, len, value);
          return;
        }
        link = c;
        n = next;
        continue;
      }
      // n is off the new prefix's path below bit `common`: put a node above it.
      let top: number;
      if (common === len) {
        // The new prefix covers n.
        top = this.node(addr, len, value);
        nodes[TrieBuilder.childAt(top, nKey, len)] = n;
      } else {
        // They diverge at bit `common`: a branch node with both below.
        top = this.node(addr & MASKS[common]!, common, -1);
        const leaf = this.node(addr, len, value);
        nodes[TrieBuilder.childAt(top, addr, common)] = leaf;
        nodes[TrieBuilder.childAt(top, nKey, common)] = n;
      }
      if (link < 0) this.root = top;
      else nodes[link] = top;
      return;
    }
  }

  /**
   * Fills the top table: for each /16 block, the first node of length ≥ 16
   * on its path (where a lookup starts) and the best route above it. A
   * node shorter than 16 paints its whole range of blocks, its children
   * then repaint their parts; a node of length ≥ 16 owns exactly one block
   * (two children of a /16 share its block, so the /16 itself is the start;
   * siblings under a shorter parent differ inside the first 16 bits).
   */
  fillTop(top: Int32Array): void {
    for (let i = 0; i < top.length; i += 2) {
      top[i] = -1;
      top[i + 1] = -1;
    }
    if (this.root >= 0) this.paint(top, this.root, -1);
  }

  private paint(top: Int32Array, n: number, best: number): void {
    const nodes = this.nodes;
    const key = nodes[n * NODE_WORDS + N_KEY] as number;
    const meta = nodes[n * NODE_WORDS + N_META] as number;
    const len = meta & META_LEN_MASK;
    const block = key >>> (32 - TOP_BITS);
    if (len >= TOP_BITS) {
      top[2 * block] = n;
      top[2 * block + 1] = best;
      return;
    }
    const v = (meta >> META_LEN_BITS) - 1;
    const b = v >= 0 ? v : best;
    const end = 2 * (block + (1 << (TOP_BITS - len)));
    for (let i = 2 * block; i < end; i += 2) {
      top[i] = -1;
      top[i + 1] = b;
    }
    const c0 = nodes[n * NODE_WORDS + N_CHILD] as number;
    const c1 = nodes[n * NODE_WORDS + N_CHILD + 1] as number;
    if (c0 >= 0) this.paint(top, c0, b);
    if (c1 >= 0) this.paint(top, c1, b);
  }
}
