import { prefixMask } from '../../src/wire/ipv4-addr.js';

/**
 * The obviously right route table the trie is checked against: a list of
 * prefixes, a linear scan, the longest match wins. Slow on purpose.
 */
export class SlowRouteTable {
  private readonly routes: { addr: number; len: number; value: number }[] = [];

  /** Adds the prefix, or replaces the value of the same prefix. */
  set(addr: number, len: number, value: number): void {
    const net = (addr & prefixMask(len)) >>> 0;
    for (const r of this.routes) {
      if (r.addr === net && r.len === len) {
        r.value = value;
        return;
      }
    }
    this.routes.push({ addr: net, len, value });
  }

  delete(addr: number, len: number): boolean {
    const net = (addr & prefixMask(len)) >>> 0;
    const i = this.routes.findIndex((r) => r.addr === net && r.len === len);
    if (i < 0) return false;
    this.routes.splice(i, 1);
    return true;
  }

  /** Value of the longest prefix containing addr, or -1. */
  lookup(addr: number): number {
    let best = -1;
    let bestLen = -1;
    for (const r of this.routes) {
      if (((addr & prefixMask(r.len)) >>> 0) === r.addr && r.len > bestLen) {
        best = r.value;
        bestLen = r.len;
      }
    }
    return best;
  }

  get size(): number {
    return this.routes.length;
  }

  entries(): readonly { addr: number; len: number; value: number }[] {
    return this.routes;
  }
}
