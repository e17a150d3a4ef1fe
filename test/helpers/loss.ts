/**
 * Where a transfer's packets went, for failure messages: every drop counter
 * along the path, read before and after, and the ones that moved. Per weft
 * node its status (drops by reason, the kernel's drops at its UDP sockets
 * and TUN queue, and the packets each side carried); per namespace the
 * kernel's UDP counters (/proc/net/snmp) and every link's rx/tx drops. The
 * traffic tool's own figures come from the caller.
 */
import { controlRequest } from '../../src/control/control-server.js';
import type { Testbed } from '../../src/testbed/index.js';
import type { WeftNode } from '../../src/testbed/weft-node.js';

/** A namespace on the path, and the weft node that runs in it, if any. */
export interface LossSite {
  name: string;
  ns: string;
  node?: WeftNode;
}

type Counters = Map<string, number>;

const UDP_SNMP = ['RcvbufErrors', 'SndbufErrors', 'NoPorts', 'InCsumErrors'];
const WEFT_FLOW = ['tun_rx_packets', 'udp_tx_packets', 'udp_rx_packets', 'tun_tx_packets'];

interface WeftStatus {
  drops?: Record<string, number>;
  totals?: Record<string, number>;
  kernelDrops?: { udpSocket: number; tunQueue: number } | null;
}

/** /proc/net/snmp's Udp line pair as name → value. */
function parseUdpSnmp(text: string): Record<string, number> {
  const lines = text.split('\n').filter((l) => l.startsWith('Udp:'));
  const names = lines[0]?.split(/\s+/).slice(1) ?? [];
  const values = lines[1]?.split(/\s+/).slice(1).map(Number) ?? [];
  return Object.fromEntries(names.map((n, i) => [n, values[i] ?? 0]));
}

async function read(tb: Testbed, sites: readonly LossSite[]): Promise<Counters> {
  const out: Counters = new Map();
  await Promise.all(sites.map(async (s) => {
    const snmp = await tb.exec(s.ns, ['cat', '/proc/net/snmp']);
    const udp = parseUdpSnmp(snmp.stdout);
    for (const n of UDP_SNMP) if (udp[n] !== undefined) out.set(`${s.name} kernel Udp ${n}`, udp[n]);
    // InErrors includes the buffer and checksum errors: only the rest counts apart.
    out.set(`${s.name} kernel Udp InErrors (other)`, (udp.InErrors ?? 0) - (udp.RcvbufErrors ?? 0) - (udp.InCsumErrors ?? 0));
    const links = await tb.exec(s.ns, ['ip', '-j', '-s', 'link', 'show']);
    for (const l of JSON.parse(links.stdout || '[]') as { ifname: string; stats64?: { rx: { dropped: number }; tx: { dropped: number } } }[]) {
      if (l.stats64 === undefined) continue;
      out.set(`${s.name} ${l.ifname} rx dropped`, l.stats64.rx.dropped);
      out.set(`${s.name} ${l.ifname} tx dropped`, l.stats64.tx.dropped);
    }
    if (s.node === undefined || s.node.proc.exitCode !== null) return;
    const st = await controlRequest(s.node.controlSocket, 'GET', '/status').catch(() => null) as WeftStatus | null;
    if (st === null) return;
    for (const [reason, n] of Object.entries(st.drops ?? {})) out.set(`${s.name} weft drop ${reason}`, n);
    if (st.kernelDrops) {
      out.set(`${s.name} weft kernel udp-socket drops`, st.kernelDrops.udpSocket);
      out.set(`${s.name} weft kernel tun-queue drops`, st.kernelDrops.tunQueue);
    }
    for (const n of WEFT_FLOW) out.set(`${s.name} weft ${n}`, st.totals?.[n] ?? 0);
  }));
  return out;
}

export class LossProbe {
  private constructor(private readonly tb: Testbed, private readonly sites: readonly LossSite[], private readonly before: Counters) {}

  static async start(tb: Testbed, sites: readonly LossSite[]): Promise<LossProbe> {
    return new LossProbe(tb, sites, await read(tb, sites));
  }

  /** The drop counters that moved since start(), by name; weft's packet counts apart. */
  private async deltas(): Promise<{ drops: [string, number][]; flow: [string, number][] }> {
    const after = await read(this.tb, this.sites);
    const drops: [string, number][] = [];
    const flow: [string, number][] = [];
    for (const [k, v] of after) {
      const d = v - (this.before.get(k) ?? 0);
      if (WEFT_FLOW.some((n) => k.endsWith(` weft ${n}`))) flow.push([k, d]);
      else if (d !== 0) drops.push([k, d]);
    }
    return { drops, flow };
  }

  /**
   * One read: the drops that moved, and one paragraph of the tool's
   * figures, every drop counter that moved (and their sum), weft's packet counts.
   */
  async report(toolFigures: string): Promise<{ text: string; drops: [string, number][] }> {
    const { drops, flow } = await this.deltas();
    const total = drops.reduce((a, [, d]) => a + d, 0);
    const text = `${toolFigures}; drop counters that moved: ${drops.length === 0 ? 'none' : drops.map(([k, d]) => `${k} +${d}`).join(', ')}`
      + ` (sum ${total}); weft packets: ${flow.map(([k, d]) => `${k} ${d}`).join(', ')}`;
    return { text, drops };
  }
}

/** iperf3's UDP figures as the report's first part. */
export function iperf3Figures(s: { packets: number | null; receivedPackets: number | null; lostPackets: number | null }): string {
  return `iperf3: sent ${s.packets ?? '?'}, received ${s.receivedPackets ?? '?'}, lost ${s.lostPackets ?? '?'}`;
}
