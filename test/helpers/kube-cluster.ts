/**
 * A Kubernetes API for weft daemons in testbed namespaces: the in-process
 * FakeKubeApi listens on a unix socket (a path reaches across network
 * namespaces), and socat in each host namespace forwards that host's
 * 127.0.0.1:6443 to it — so the daemons speak real HTTP and watches, and
 * no packet leaves the test's namespaces. The kubeconfig names
 * http://127.0.0.1:6443 with the fake's bearer token.
 */
import { join } from 'node:path';
import type { Host, Testbed } from '../../src/testbed/index.js';
import { FakeKubeApi } from './fake-kube-api.js';
import { sleep } from './traffic.js';

const API_PORT = 6443;

export const FLANNEL_PREFIX = 'flannel.alpha.coreos.com';

export class KubeCluster {
  readonly api = new FakeKubeApi();
  kubeconfig = '';
  private sock = '';

  constructor(private readonly tb: Testbed, private readonly dir: string) {}

  async start(): Promise<void> {
    this.sock = join(this.dir, 'kube-api.sock');
    await this.api.start({ path: this.sock });
    this.kubeconfig = this.api.writeKubeconfig(this.dir, 'kubeconfig', `http://127.0.0.1:${API_PORT}`);
  }

  /** Makes the API reachable from `host` (socat, cleaned up with the testbed); resolves once it answers there. */
  async expose(host: Host): Promise<void> {
    this.tb.spawn(host.ns, ['socat', `TCP-LISTEN:${API_PORT},bind=127.0.0.1,reuseaddr,fork`, `UNIX-CONNECT:${this.sock}`]);
    const deadline = Date.now() + 5000;
    for (;;) {
      const r = await this.tb.exec(host.ns, ['ss', '-Hltn', `sport = :${API_PORT}`]);
      if (r.stdout.includes(`127.0.0.1:${API_PORT}`)) return;
      if (Date.now() > deadline) throw new Error(`socat in ${host.ns} is not listening on ${API_PORT}: ${r.stdout}${r.stderr}`);
      await sleep(50);
    }
  }

  /** The flags a DaemonSet passes for the Kubernetes store (the kubeconfig instead of in-cluster credentials). */
  daemonArgs(): string[] {
    return ['--kube-subnet-mgr', `--kubeconfig-file=${this.kubeconfig}`];
  }

  /** A node's annotations under flannel's prefix, prefix stripped. */
  flannelAnnotations(name: string): Record<string, string> {
    const meta = (this.api.getNode(name)?.metadata ?? {}) as { annotations?: Record<string, string> };
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(meta.annotations ?? {})) {
      if (k.startsWith(`${FLANNEL_PREFIX}/`)) out[k.slice(FLANNEL_PREFIX.length + 1)] = v;
    }
    return out;
  }

  /** The node's NetworkUnavailable condition, if any. */
  networkUnavailable(name: string): Record<string, unknown> | undefined {
    const status = (this.api.getNode(name)?.status ?? {}) as { conditions?: Record<string, unknown>[] };
    return status.conditions?.find((c) => c.type === 'NetworkUnavailable');
  }

  async close(): Promise<void> {
    await this.api.close();
  }
}
