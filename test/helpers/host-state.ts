/**
 * What a daemon start could change on a host namespace — links, IPv4
 * addresses, IPv4 routes of every table, netfilter rules — for "the host
 * is as it was" checks after a refused start. IPv6 is left out: weft does
 * not touch it, and the kernel's duplicate address detection changes its
 * flags on fresh links by itself.
 */
import type { Testbed } from '../../src/testbed/index.js';

export interface HostState {
  links: unknown;
  addrs: unknown;
  routes: unknown;
  /** iptables-save's rules and non-built-in chains. */
  rules: string;
}

export async function hostState(tb: Testbed, ns: string): Promise<HostState> {
  const ipj = async (...a: string[]): Promise<unknown> => JSON.parse((await tb.run(null, ['ip', '-n', ns, '-j', ...a])).stdout || '[]');
  // Rules and our own chains only: iptables instantiates a table (empty, default policies) when first asked.
  const builtin = /^:(INPUT|FORWARD|OUTPUT|PREROUTING|POSTROUTING) /;
  const rules = (await tb.exec(ns, ['iptables-save'])).stdout.split('\n')
    .filter((l) => l.startsWith('-A ') || (l.startsWith(':') && !builtin.test(l))).join('\n');
  return { links: await ipj('link', 'show'), addrs: await ipj('-4', 'addr', 'show'), routes: await ipj('-4', 'route', 'show', 'table', 'all'), rules };
}
