/**
 * Sends malformed VXLAN datagrams at a userspace VTEP, from inside a test
 * namespace: `count` each of wrong VNI, wrong inner destination MAC, a
 * frame shorter than VXLAN + Ethernet + IPv4 headers, and the I flag
 * clear, interleaved and paced. Prints how many of each it sent as JSON
 * (keys are weft's drop-reason names).
 *   node vxlan-flood.js <target> <port> <count> <vni> <targetVtepMac> <fromIp>
 * Everything but the one defect is what the target accepts, so each
 * datagram is dropped for exactly the reason it is counted under.
 */
import { createSocket } from 'node:dgram';
import { emitIpv4 } from '../../src/wire/ipv4.js';
import { parseIpv4 } from '../../src/wire/ipv4-addr.js';

const [target, portText, countText, vniText, macText, fromIp] = process.argv.slice(2) as string[];
const port = Number(portText);
const count = Number(countText);
const vni = Number(vniText);
const mac = Buffer.from(macText!.split(':').map((x) => parseInt(x, 16)));
setTimeout(() => { process.stderr.write('vxlan-flood: timed out\n'); process.exit(3); }, 30_000).unref();

/** VXLAN header (I flag, `v`), Ethernet to `dst`, then `inner` bytes of an IPv4 packet. */
function frame(v: number, dst: Buffer, innerLen: number): Buffer {
  const b = Buffer.alloc(8 + 14 + Math.max(innerLen, 28), 0x5a);
  b.writeUInt32BE(0x08000000, 0);
  b.writeUInt32BE((v << 8) >>> 0, 4);
  dst.copy(b, 8);
  Buffer.from([0x0a, 0x77, 0x77, 0x77, 0x77, 0x01]).copy(b, 14);
  b.writeUInt16BE(0x0800, 20);
  emitIpv4({ src: parseIpv4('10.244.250.2'), dst: parseIpv4('10.244.1.2'), protocol: 17, ttl: 64, tos: 0, ident: 1,
    dontFrag: false, payloadLen: 8 }, b, 22);
  return b.subarray(0, 8 + 14 + innerLen);
}

const kinds: { reason: string; data: Buffer }[] = [
  { reason: 'wrong_vni', data: frame((vni + 1) & 0xffffff, mac, 28) },
  { reason: 'wrong_dst_mac', data: frame(vni, Buffer.from([0x0a, 0x00, 0x00, 0x00, 0x00, 0x77]), 28) },
  // 8 + 14 + 10: a whole VXLAN and Ethernet header, half an IPv4 header.
  { reason: 'truncated', data: frame(vni, mac, 10) },
];
{
  const b = Buffer.from(frame(vni, mac, 28));
  b[0] = 0; // I flag clear, VNI and frame otherwise fine
  kinds.push({ reason: 'bad_vxlan_flags', data: b });
}

const sock = createSocket('udp4');
await new Promise<void>((resolve, reject) => {
  sock.once('error', reject);
  sock.bind(0, fromIp, () => resolve());
});
const sent: Record<string, number> = {};
for (let i = 0; i < count * kinds.length; i++) {
  const k = kinds[i % kinds.length]!;
  await new Promise<void>((resolve, reject) => sock.send(k.data, port, target, (e) => (e ? reject(e) : resolve())));
  sent[k.reason] = (sent[k.reason] ?? 0) + 1;
  // Paced so the receiver's socket buffer never overflows: every datagram
  // sent must show up in a drop counter.
  if (i % 100 === 99) await new Promise((r) => setTimeout(r, 5));
}
sock.close();
process.stdout.write(`${JSON.stringify(sent)}\n`);
