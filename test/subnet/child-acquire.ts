/**
 * Helper process for the LocalLeaseStore race test (not a test itself).
 *   node child-acquire.js <leaseDir> <publicIp> <confJson> <previous|-> <ttlMs>
 * Prints "ready", waits for a line on stdin (so all children start their
 * acquire together), acquires, prints {"subnet":"a.b.c.d-len"} or
 * {"error":code} and exits.
 */
import { LocalLeaseStore } from '../../src/subnet/local.js';
import { subnetKey } from '../../src/subnet/lease.js';
import { parseIpv4, parseIpv4Prefix } from '../../src/wire/ipv4-addr.js';

const [dir, publicIp, confJson, previous, ttl] = process.argv.slice(2) as [string, string, string, string, string];
const c = JSON.parse(confJson) as { network: string; subnetLen: number; subnetMin: string; subnetMax: string };
const conf = {
  network: parseIpv4Prefix(c.network),
  subnetLen: c.subnetLen,
  subnetMin: parseIpv4(c.subnetMin),
  subnetMax: parseIpv4(c.subnetMax),
};
const store = new LocalLeaseStore({ dir, netConfPath: '/nonexistent', ttlMs: Number(ttl) });

process.stdout.write('ready\n');
process.stdin.once('data', () => {
  process.stdin.pause();
  store
    .acquire(conf, {
      attrs: { publicIp: parseIpv4(publicIp), publicIpv6: null },
      previous: previous === '-' ? null : parseIpv4Prefix(previous),
    })
    .then(
      (lease) => process.stdout.write(`${JSON.stringify({ subnet: subnetKey(lease.subnet) })}\n`),
      (e: unknown) => process.stdout.write(`${JSON.stringify({ error: (e as { code?: string }).code ?? String(e) })}\n`),
    )
    .finally(() => process.exit(0));
});
