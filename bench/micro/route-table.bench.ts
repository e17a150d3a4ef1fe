/**
 * Route lookups the way a worker does them: refresh() once, then a batch of
 * 64 lookups (the "ns/packet" column is ns per lookup). Tables of 10, 1 000
 * and 50 000 routes, random and clustered:
 *  - random: /24s anywhere in the address space;
 *  - clustered: /24 pod subnets inside one flannel Network, the real shape
 *    (10.244.0.0/16 for 10 routes; 10.0.0.0/8 for more, since a /16 holds
 *    only 256 /24s). Lookups are half inside a route, half random (random
 *    cases) or anywhere inside the Network (clustered cases).
 * Also prints commit() build time for 50 000 routes and peerByAddr.
 * Run: node dist/bench/micro/route-table.bench.js  (WEFT_BENCH_MAX_TIME=s)
 */
import { performance } from 'node:perf_hooks';
import { runSuite, type BenchCase } from './harness.js';
import { RouteTableReader, RouteTableWriter } from '../../src/route-table/index.js';
import { parseIpv4 } from '../../src/wire/ipv4-addr.js';
import { Prng } from '../../test/helpers/prng.js';

const BATCH = 64;
const ADDRS = 4096; // lookup addresses per case, walked 64 at a time
const PEERS = 256;

interface Table {
  writer: RouteTableWriter;
  reader: RouteTableReader;
  addrs: Uint32Array;
}

let readerSlot = 0;

function routesFor(kind: 'random' | 'clustered', n: number, rng: Prng): number[] {
  const nets = new Set<number>();
  if (kind === 'random') {
    while (nets.size < n) nets.add((rng.u32() & 0xffffff00) >>> 0);
  } else {
    const base = n <= 256 ? parseIpv4('10.244.0.0') : parseIpv4('10.0.0.0');
    const span = n <= 256 ? 256 : 65536;
    while (nets.size < n) nets.add((base + rng.int(span) * 256) >>> 0);
  }
  return [...nets];
}

async function build(kind: 'random' | 'clustered', n: number): Promise<Table> {
  const rng = new Prng(n * 2 + (kind === 'random' ? 0 : 1));
  const writer = RouteTableWriter.create();
  const slots: number[] = [];
  for (let i = 0; i < PEERS; i++) {
    slots.push(writer.upsertPeer(`peer-${i}`, { addr: (parseIpv4('192.168.0.0') + i) >>> 0, port: 8285, subnet: parseIpv4('100.64.0.0') + i * 4, prefixLen: 30 }));
  }
  const nets = routesFor(kind, n, rng);
  nets.forEach((net, i) => writer.addRoute(net, 24, slots[i % PEERS] as number));
  await writer.commit();
  const reader = new RouteTableReader(writer.buffer, readerSlot++);
  const addrs = new Uint32Array(ADDRS);
  const hostMask = n <= 256 ? 0xffff : 0xffffff;
  const network = ((nets[0] as number) & ~hostMask) >>> 0;
  for (let i = 0; i < ADDRS; i++) {
    if (i % 2 === 0) addrs[i] = ((rng.pick(nets) | rng.int(256)) >>> 0);
    else if (kind === 'random') addrs[i] = rng.u32();
    else addrs[i] = (network | (rng.u32() & hostMask)) >>> 0;
  }
  return { writer, reader, addrs };
}

let sink = 0;
const peerAddrBase = parseIpv4('192.168.0.0');

function lookupCase(name: string, t: Table): BenchCase {
  let pos = 0;
  const { reader, addrs } = t;
  return {
    name,
    perIteration: BATCH,
    fn: () => {
      reader.refresh();
      let acc = 0;
      for (let i = 0; i < BATCH; i++) acc += reader.lookup(addrs[pos + i] as number);
      pos = (pos + BATCH) & (ADDRS - 1);
      sink ^= acc;
    },
  };
}

const cases: BenchCase[] = [];
const tables: Table[] = [];
for (const n of [10, 1000, 50000]) {
  for (const kind of ['random', 'clustered'] as const) {
    const t = await build(kind, n);
    tables.push(t);
    cases.push(lookupCase(`lookup, ${n} routes, ${kind}`, t));
  }
}
{
  const t = tables[0] as Table;
  let pos = 0;
  cases.push({
    name: `peerByAddr, ${PEERS} peers (half hits)`,
    perIteration: BATCH,
    fn: () => {
      let acc = 0;
      for (let i = 0; i < BATCH; i++) {
        const a = (peerAddrBase + ((pos + i) & 511)) >>> 0;
        acc += t.reader.peerByAddr(a);
      }
      pos = (pos + BATCH) & 511;
      sink ^= acc;
    },
  });
}
runSuite('route-table', cases);

// commit() build time: the whole generation from the model, 50 000 routes.
console.log('\ncommit() with 50 000 routes (default capacity 65536 routes / 16384 peers)');
for (const i of [4, 5]) {
  const t = tables[i] as Table;
  const times: number[] = [];
  for (let k = 0; k < 7; k++) {
    t.reader.refresh(); // ack, so commit() does not wait
    const t0 = performance.now();
    await t.writer.commit();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const kind = i === 4 ? 'random' : 'clustered';
  console.log(
    `  ${kind.padEnd(9)} median ${(times[3] as number).toFixed(1)} ms, min ${(times[0] as number).toFixed(1)} ms, max ${(times[6] as number).toFixed(1)} ms`,
  );
}
const sab = (tables[4] as Table).writer.buffer.byteLength;
console.log(`  buffer: ${(sab / 1048576).toFixed(1)} MiB for both generations at default capacity`);
for (const t of tables) t.reader.release();
if (sink === 0x7fffffff) console.log('');
