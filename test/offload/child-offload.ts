/**
 * Runs inside a test-created namespace (see tun-offload.test.ts):
 * `node child-offload.js <scenario>`; prints one JSON line.
 *
 * tso:   the kernel's TCP client sends through an offloading TUN to a peer
 *        we play by hand; every read is split and checked.
 * probe: probeTunOffload() as the daemon would run it.
 */
import { execFileSync } from 'node:child_process';
import { connect } from 'node:net';
import { native } from '../../src/native/index.js';
import {
  GSO_TCPV4, TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_TSO_ECN, VNET_SPLIT_OUT_MAX,
  probeTunOffload, tunSetOffload, vnetSplit,
} from '../../src/offload/index.js';
import { ACK, SYN, buildPacket, pattern, rd16, rd32, verifyPacket } from './packets.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const LOCAL = 0xa9fefa01, PEER = 0xa9fefa02;
/** The split's maxPktLen, and the MSS our SYN-ACK announces so that a
 * full segment (40 bytes of headers, no options) is exactly that long: a
 * lone segment the kernel sends without GSO (a retransmission, a
 * cwnd-limited send) must fit too, as the pod MTU sees to in the daemon. */
const MAX_PKT = 1400;
const MSS = MAX_PKT - 40;

async function tso(): Promise<Record<string, unknown>> {
  const fd = native.tunOpen('wto0', 1, native.TUN_VNET_HDR)[0]!;
  const out: Record<string, unknown> = {};
  try {
    tunSetOffload(fd, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN);
    execFileSync('ip', ['addr', 'add', '169.254.250.1', 'peer', '169.254.250.2', 'dev', 'wto0']);
    execFileSync('ip', ['link', 'set', 'wto0', 'up']);
    const TOTAL = 300_000;
    const data = pattern(TOTAL, 1);
    const client = connect({ host: '169.254.250.2', port: 5001 });
    client.on('error', () => {});
    const slab = new Uint8Array(70_000 + VNET_SPLIT_OUT_MAX + 16);
    const offs = Uint32Array.of(0), lens = new Uint32Array(1), res = new Uint32Array(4);
    const reasm = new Uint8Array(TOTAL);
    let isn = -1, sport = 0, contiguous = 0, reads = 0, gsoReads = 0, maxGso = 0, maxRead = 0,
      segments = 0, bad = 0, splitErr = 0, stride = 0;
    // [reason, read length, gso type] of each read the split refused, for the failure message.
    const refused: number[][] = [];
    const send = (p: Uint8Array): void => {
      const b = new Uint8Array(10 + p.length);
      b.set(p, 10);
      native.tunWrite(fd, b, Uint32Array.of(0), Uint32Array.of(b.length), 1);
    };
    const peer = { src: PEER, dst: LOCAL, sport: 5001 };
    const end = Date.now() + 4000;
    let wrote = false;
    while (Date.now() < end && contiguous < 150_000) {
      if (native.tunRead(fd, slab, offs, 70_000, lens, 1) !== 1) {
        if (isn >= 0 && client.readyState === 'open' && !wrote) { client.write(data); wrote = true; }
        await sleep(1);
        continue;
      }
      const p = slab.subarray(10, lens[0]!);
      if (p[0]! >> 4 !== 4 || p[9] !== 6) continue;
      if (isn < 0) {
        if (p[33] !== SYN) continue;
        isn = rd32(p, 24);
        sport = rd16(p, 20);
        send(buildPacket({ ...peer, dport: sport, seq: 5000, ack: isn + 1, flags: SYN | ACK,
          window: 65535, opts: Uint8Array.of(2, 4, MSS >> 8, MSS & 0xff), payload: new Uint8Array(0) }));
        continue;
      }
      reads++;
      maxRead = Math.max(maxRead, lens[0]!);
      const gsoType = slab[1]!, gsoSize = slab[4]! | (slab[5]! << 8);
      if (gsoType === GSO_TCPV4 && gsoSize > 0) { gsoReads++; maxGso = Math.max(maxGso, gsoSize); }
      const r = vnetSplit(slab, 0, lens[0]!, 70_000, VNET_SPLIT_OUT_MAX, MAX_PKT, res);
      if (r !== 0) {
        splitErr++;
        refused.push([r, lens[0]!, gsoType]);
        continue;
      }
      stride = Math.max(stride, res[1]!);
      let o = 70_000;
      for (let i = 0; i < res[0]!; i++) {
        const len = i + 1 < res[0]! ? res[1]! : res[2]!;
        segments++;
        const v = verifyPacket(slab, o, len);
        if (!v.ipOk || !v.l4Ok || len > MAX_PKT) bad++;
        const s = slab.subarray(o, o + len);
        const hl = 20 + (s[32]! >> 4) * 4;
        const at = (rd32(s, 24) - isn - 1) >>> 0;
        if (at + (len - hl) <= TOTAL) reasm.set(s.subarray(hl), at);
        if (at <= contiguous && at + len - hl > contiguous) contiguous = at + len - hl;
        o += len;
      }
      send(buildPacket({ ...peer, dport: sport, seq: 5001, ack: (isn + 1 + contiguous) >>> 0,
        flags: ACK, window: 65535, payload: new Uint8Array(0) }));
    }
    client.destroy();
    let same = true;
    for (let i = 0; i < contiguous; i++) if (reasm[i] !== data[i]) { same = false; break; }
    Object.assign(out, { handshake: isn >= 0, reads, gsoReads, maxGso, maxRead, segments, bad,
      splitErr, refused, stride, contiguous, same });
  } finally {
    native.close(fd);
  }
  return out;
}

const scenario = process.argv[2];
let out: Record<string, unknown>;
if (scenario === 'tso') {
  out = await tso();
} else if (scenario === 'probe') {
  const t0 = Date.now();
  const r = await probeTunOffload();
  const links = execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' });
  out = { ...r, ms: Date.now() - t0, leftover: links.includes('wprobe') };
} else {
  console.error(`unknown scenario ${scenario}`);
  process.exit(2);
}
console.log(JSON.stringify(out));
process.exit(0);
