/**
 * What flanneld's host-gw backend does, written out with plain ip commands
 * and flannel's lease bytes (no weft code), as the reference weft's
 * host-gw must match and interoperate with (flannel
 * pkg/backend/hostgw/hostgw.go and route_network.go): the lease value
 * {"PublicIP":…,"PublicIPv6":null,"BackendType":"host-gw"}, and per peer
 * netlink.RouteAdd(Dst: subnet, Gw: PublicIP, LinkIndex: underlay), which
 * is the route `ip route add <subnet> via <PublicIP> dev <underlay>` makes
 * (main table, protocol boot, scope universe, no metric).
 */
import type { Testbed } from '../../src/testbed/index.js';

export function flannelHostGwLeaseJson(publicIp: string): string {
  return `{"PublicIP":"${publicIp}","PublicIPv6":null,"BackendType":"host-gw"}`;
}

export async function addFlannelHostGwRoute(tb: Testbed, ns: string, subnet: string, publicIp: string, dev: string): Promise<void> {
  await tb.run(null, ['ip', '-n', ns, 'route', 'add', subnet, 'via', publicIp, 'dev', dev]);
}

/** `ip -j -d route show table main exact <dst>`: every main-table route to exactly that prefix. */
export async function routesTo(tb: Testbed, ns: string, dst: string): Promise<Record<string, unknown>[]> {
  const r = await tb.run(null, ['ip', '-n', ns, '-j', '-d', 'route', 'show', 'table', 'main', 'exact', dst]);
  return r.stdout.trim() === '' ? [] : (JSON.parse(r.stdout) as Record<string, unknown>[]);
}

/** The route flanneld would add for `subnet` via `publicIp`, as iproute2 reports it (added and removed again under a spare prefix). */
export async function flannelHostGwRouteShape(tb: Testbed, ns: string, publicIp: string, dev: string): Promise<Record<string, unknown>> {
  const spare = '10.255.254.0/24';
  await addFlannelHostGwRoute(tb, ns, spare, publicIp, dev);
  try {
    const [r] = await routesTo(tb, ns, spare);
    if (r === undefined) throw new Error(`ip route add ${spare} left no route in ${ns}`);
    return { ...r, dst: '<dst>' };
  } finally {
    await tb.run(null, ['ip', '-n', ns, 'route', 'del', spare, 'via', publicIp, 'dev', dev]);
  }
}
