/**
 * The integration tests' common setup: two hosts on the namespace testbed,
 * a weft node on each (arguments per host), a pod behind each node, and pod
 * B reachable from pod A. stop() removes every namespace, link and file it
 * made, also after a failed start.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Testbed, twoHosts, waitReachable, type Host, type Pod } from '../../src/testbed/index.js';
import { attachWeftPod, startWeftNode, type WeftNode } from '../../src/testbed/weft-node.js';

export class WeftPair {
  readonly tb: Testbed;
  /** The nodes' state directory (leases, subnet.env, sockets). */
  dir = '';
  readonly nodes: WeftNode[] = [];
  podA!: Pod;
  podB!: Pod;

  /** `prefix` names the namespaces (the pid is appended); `args` gives each node's extra flags. */
  constructor(prefix: string, private readonly args: (host: Host, index: number) => string[]) {
    this.tb = new Testbed(`${prefix}${process.pid % 10000}`);
  }

  async start(): Promise<void> {
    this.dir = await mkdtemp(join(tmpdir(), 'weft-it-'));
    const { hosts } = await twoHosts(this.tb);
    for (const [i, h] of hosts.entries()) {
      this.nodes.push(await startWeftNode(this.tb, h, { dir: this.dir, extraArgs: this.args(h, i) }));
    }
    this.podA = await attachWeftPod(this.tb, this.nodes[0]!);
    this.podB = await attachWeftPod(this.tb, this.nodes[1]!);
    assert.ok(await waitReachable(this.tb, this.podA.ns, this.podB.ip, 10_000), 'pod B reachable from pod A');
  }

  async stop(): Promise<void> {
    await this.tb.cleanup();
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}
