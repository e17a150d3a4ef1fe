/**
 * Sends a bounded mix of malformed and spoofed datagrams at a weft daemon's
 * UDP port, from inside a test namespace. Prints how many of each kind it
 * sent as JSON (keys are weft's drop-reason names).
 *   node flood.js <target> <port> <count> <peerIp> <strangerIp> <podDst> <peerPodSrc>
 * peerIp must be an address of a known peer (the namespace's own), strangerIp
 * a second local address no lease uses.
 */
import { createSocket, type Socket } from 'node:dgram';
import { emitIpv4 } from '../../src/wire/ipv4.js';
import { parseIpv4 } from '../../src/wire/ipv4-addr.js';

const [target, portText, countText, peerIp, strangerIp, podDst, peerPodSrc] = process.argv.slice(2) as string[];
const port = Number(portText);
const count = Number(countText);
setTimeout(() => { process.stderr.write('flood: timed out\n'); process.exit(3); }, 60_000).unref();

function valid(src: string, dst: string, len = 60): Buffer {
  const b = Buffer.alloc(len, 0x5a);
  emitIpv4({ src: parseIpv4(src), dst: parseIpv4(dst), protocol: 17, ttl: 64, tos: 0, ident: 1, dontFrag: false,
    payloadLen: len - 20 }, b, 0);
  return b;
}

const kinds: { reason: string; from: 'peer' | 'stranger'; data: Buffer }[] = [];
kinds.push({ reason: 'truncated', from: 'peer', data: Buffer.from([0x45, 0, 0, 5, 1]) });
{ const b = valid(peerPodSrc!, podDst!); b[0] = 0x55; kinds.push({ reason: 'bad_version', from: 'peer', data: b }); }
{ const b = valid(peerPodSrc!, podDst!); b[0] = 0x44; kinds.push({ reason: 'bad_header_length', from: 'peer', data: b }); }
{ const b = valid(peerPodSrc!, podDst!); b.writeUInt16BE(100, 2); kinds.push({ reason: 'bad_total_length', from: 'peer', data: b }); }
{ const b = valid(peerPodSrc!, podDst!); b[10] = b[10]! ^ 0xff; kinds.push({ reason: 'bad_checksum', from: 'peer', data: b }); }
kinds.push({ reason: 'spoofed_source', from: 'peer', data: valid('10.244.250.2', podDst!) });
kinds.push({ reason: 'not_for_us', from: 'peer', data: valid(peerPodSrc!, '10.244.250.9') });
kinds.push({ reason: 'unknown_peer', from: 'stranger', data: valid(peerPodSrc!, podDst!) });

function bound(addr: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    s.once('error', reject);
    s.bind(0, addr, () => resolve(s));
  });
}

const peer = await bound(peerIp!);
const stranger = await bound(strangerIp!);
const sent: Record<string, number> = {};
for (let i = 0; i < count; i++) {
  const k = kinds[i % kinds.length]!;
  const s = k.from === 'peer' ? peer : stranger;
  await new Promise<void>((resolve, reject) => s.send(k.data, port, target, (e) => (e ? reject(e) : resolve())));
  sent[k.reason] = (sent[k.reason] ?? 0) + 1;
  // Paced so the receiver's socket buffer never overflows: every datagram
  // sent must show up in a drop counter.
  if (i % 200 === 199) await new Promise((r) => setTimeout(r, 5));
}
peer.close();
stranger.close();
process.stdout.write(`${JSON.stringify(sent)}\n`);
