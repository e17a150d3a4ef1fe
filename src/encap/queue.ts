/**
 * A batch of outgoing packets described as (offset, length[, addr, port])
 * into one slab. Arrays are allocated once; `count` is reset per batch.
 * This is the shape the native batch calls take.
 */
export class PacketQueue {
  readonly offs: Uint32Array;
  readonly lens: Uint32Array;
  readonly addrs: Uint32Array;
  readonly ports: Uint32Array;
  /** Peer slot per packet, for per-peer counters (-1 = none). */
  readonly peers: Int32Array;
  /** UDP_SEGMENT size per entry: 0 = one datagram, else a run of datagrams of this size. */
  readonly segs: Uint32Array;
  count = 0;

  constructor(readonly capacity: number) {
    this.offs = new Uint32Array(capacity);
    this.lens = new Uint32Array(capacity);
    this.addrs = new Uint32Array(capacity);
    this.ports = new Uint32Array(capacity);
    this.peers = new Int32Array(capacity);
    this.segs = new Uint32Array(capacity);
  }

  get full(): boolean {
    return this.count >= this.capacity;
  }

  push(off: number, len: number, addr: number, port: number, peer: number): void {
    const i = this.count++;
    this.offs[i] = off;
    this.lens[i] = len;
    this.addrs[i] = addr;
    this.ports[i] = port;
    this.peers[i] = peer;
    this.segs[i] = 0;
  }

  /** A run of datagrams of `seg` bytes (the last may be shorter), sent with one UDP_SEGMENT message. */
  pushRun(off: number, len: number, addr: number, port: number, peer: number, seg: number): void {
    this.push(off, len, addr, port, peer);
    this.segs[this.count - 1] = seg;
  }
}

/**
 * Fixed slots for packets weft generates itself (ICMP errors), inside the
 * worker's slab so they can share a batch call with forwarded packets.
 */
export class ReplyArea {
  private next = 0;
  constructor(readonly base: number, readonly slotSize: number, readonly slots: number) {}
  /** Offset of a free slot, or -1 when every slot of this batch is used. */
  take(): number {
    if (this.next >= this.slots) return -1;
    return this.base + this.slotSize * this.next++;
  }
  reset(): void {
    this.next = 0;
  }
}
