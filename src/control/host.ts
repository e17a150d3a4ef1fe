/**
 * Host setup for the udp backend, as flanneld does it: the TUN gets the
 * lease's network address as /32, MTU = underlay MTU − 28, and one route
 * for the whole Network through it. The TUN is not persistent: closing its
 * queues removes the device together with its address and route, which is
 * how a failed start leaves nothing half-configured.
 */
import { formatIpv4, formatIpv4Prefix, type Ipv4Prefix } from '../wire/ipv4-addr.js';
import { readFile, writeFile } from 'node:fs/promises';
import { ip } from './ip.js';
import type { Log } from '../log.js';

export interface TunSetup {
  readonly name: string;
  readonly lease: Ipv4Prefix;
  readonly network: Ipv4Prefix;
  readonly mtu: number;
  /** Kernel queue length; a deep queue absorbs bursts instead of dropping. */
  readonly txQueueLen: number;
  readonly log: Log;
}

export async function configureTun(s: TunSetup): Promise<void> {
  // The udp backend carries IPv4 only; without this the kernel would send
  // router solicitations and MLD reports into the TUN, counted as drops.
  await writeFile(`/proc/sys/net/ipv6/conf/${s.name}/disable_ipv6`, '1').catch(() => undefined);
  // weft's ICMP errors (net-unreachable, frag-needed, time-exceeded) come
  // from the tunnel address, which is local to this host; without
  // accept_local the kernel drops them as martians before they reach the pod.
  await writeFile(`/proc/sys/net/ipv4/conf/${s.name}/accept_local`, '1').catch((e: unknown) => {
    // Read-only /proc/sys (an unprivileged container): forwarding works, only
    // weft's own ICMP errors are lost; say how to get them back.
    s.log.warn(`cannot set net.ipv4.conf.${s.name}.accept_local=1 (${e instanceof Error ? e.message : String(e)}); `
      + 'weft\'s ICMP errors (unreachable, frag-needed, time-exceeded) will be dropped by the kernel as martians. '
      + 'Set the sysctl from a privileged init container to keep them.');
  });
  await ip(['link', 'set', 'dev', s.name, 'mtu', String(s.mtu), 'txqueuelen', String(s.txQueueLen)]);
  await ip(['addr', 'replace', `${formatIpv4(s.lease.addr)}/32`, 'dev', s.name]);
  await ip(['link', 'set', 'dev', s.name, 'up']);
  // replace, not add: a route left by an earlier run must not stop us.
  await ip(['route', 'replace', formatIpv4Prefix(s.network), 'dev', s.name]);
}

export async function readSysctl(path: string): Promise<string | null> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    return null;
  }
}
