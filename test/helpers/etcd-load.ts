/**
 * Peer-lease load on an etcd, as a separate process so it can run inside
 * the namespace that holds etcd (the test process cannot reach it):
 *
 *   node etcd-load.js <endpoint> burst <prefix> <count>
 *     grants <count> leases and puts flanneld-style lease values on them,
 *     all at once (each put its own request, as <count> flanneld nodes
 *     starting together would); prints {"keys":[…],"ms":…}.
 *   node etcd-load.js <endpoint> delete <prefix> <count>
 *     deletes the keys burst wrote; prints {"ms":…}.
 *   node etcd-load.js <endpoint> churn <prefix> <pool> <rate> <seconds>
 *     for <seconds>, <rate> events a second over a pool of <pool> keys
 *     (each tick adds an absent key or deletes a present one); prints the
 *     keys present at the end and the number of events.
 *
 * Keys are /28s in 10.244.128.0/18 (burst, up to 1024) and /29s in
 * 10.244.192.0/21 (churn, up to 256), apart from the leases daemons pick.
 */
import { Etcd3 } from 'etcd3';

const [endpoint, mode, prefix, ...rest] = process.argv.slice(2);

function burstKey(i: number): string {
  const a = 128 * 256 + i * 16;
  return `${prefix}/subnets/10.244.${a >> 8}.${a & 255}-28`;
}

function churnKey(i: number): string {
  const a = 192 * 256 + i * 8;
  return `${prefix}/subnets/10.244.${a >> 8}.${a & 255}-29`;
}

function publicIp(i: number): string {
  return `192.168.${200 + (i >> 8)}.${i & 255}`;
}

async function main(): Promise<unknown> {
  if (endpoint === undefined || prefix === undefined) throw new Error('usage: etcd-load.js <endpoint> burst|delete|churn <prefix> …');
  const client = new Etcd3({ hosts: endpoint });
  try {
    const t0 = Date.now();
    if (mode === 'burst' || mode === 'delete') {
      const count = Number(rest[0]);
      const idx = Array.from({ length: count }, (_, i) => i);
      if (mode === 'delete') {
        await Promise.all(idx.map((i) => client.delete().key(burstKey(i))));
        return { ms: Date.now() - t0 };
      }
      await Promise.all(idx.map(async (i) => {
        const lease = client.lease(86400, { autoKeepAlive: false });
        await lease.put(burstKey(i)).value(`{"PublicIP":"${publicIp(i)}","PublicIPv6":null}`);
      }));
      return { keys: idx.map(burstKey), ms: Date.now() - t0 };
    }
    if (mode === 'churn') {
      const [pool, rate, seconds] = rest.map(Number) as [number, number, number];
      const present = new Set<number>();
      let events = 0;
      const end = t0 + seconds * 1000;
      const tickMs = 1000 / rate;
      for (let next = t0; next < end; next += tickMs) {
        const wait = next - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        const i = Math.floor(Math.random() * pool);
        if (present.delete(i)) await client.delete().key(churnKey(i));
        else {
          present.add(i);
          await client.put(churnKey(i)).value(`{"PublicIP":"${publicIp(i)}","PublicIPv6":null}`);
        }
        events++;
      }
      return { keys: [...present].sort((a, b) => a - b).map(churnKey), events, ms: Date.now() - t0 };
    }
    throw new Error(`unknown mode ${mode ?? ''}`);
  } finally {
    client.close();
  }
}

main().then((r) => { process.stdout.write(`${JSON.stringify(r)}\n`); }, (e: unknown) => {
  process.stderr.write(`etcd-load: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
