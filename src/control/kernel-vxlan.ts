/**
 * VXLAN run by the kernel, programmed as flanneld's vxlan backend does:
 * device flannel.<VNI>, the lease address /32, and per peer a permanent
 * neighbour, FDB entry and onlink route (or a direct route with
 * DirectRouting). A deleted device is recreated and its peers re-added.
 */
import type { Ipv4Prefix } from '../wire/ipv4-addr.js';
import {
  canCreateVxlan, ensureVxlanDevice, iproute, setDeviceAddress, syncPeers, vxlanDeviceName, watchDevice,
  type DeviceWatch, type VxlanPeer,
} from '../netlink/index.js';
import type { Log } from '../log.js';

export interface KernelVxlanOptions {
  vni: number;
  port: number;
  mtu: number;
  mac: Uint8Array;
  localAddr: number;
  underlayDev: string;
  learning: boolean;
  gbp: boolean;
  directRouting: boolean;
  lease: Ipv4Prefix;
  log: Log;
}

export { canCreateVxlan };

export class KernelVxlan {
  readonly dev: string;
  private readonly peers = new Map<string, VxlanPeer>();
  private watch: DeviceWatch | null = null;
  private chain: Promise<unknown> = Promise.resolve();
  private stopped = false;
  /** This run created (or replaced) the device, so a failed start removes it. */
  private created = false;

  constructor(private readonly o: KernelVxlanOptions) {
    this.dev = vxlanDeviceName(o.vni);
  }

  async start(): Promise<void> {
    await this.program();
  }

  /** Device, address, every known peer; then watch for the device going away. */
  private async program(): Promise<void> {
    const o = this.o;
    const r = await ensureVxlanDevice({
      vni: o.vni, localAddr: o.localAddr, underlayDev: o.underlayDev, port: o.port, mtu: o.mtu, mac: o.mac,
      learning: o.learning, gbp: o.gbp, log: o.log,
    });
    o.log.info(`kernel vxlan: ${this.dev} ${r.created ? (r.replaced ? 'replaced' : 'created') : 'reused'} (ifindex ${r.ifindex})`);
    if (r.created) this.created = true;
    await setDeviceAddress(this.dev, o.lease);
    await this.sync();
    this.watch?.stop();
    this.watch = watchDevice(this.dev, () => {
      if (this.stopped) return;
      o.log.warn(`kernel vxlan: ${this.dev} disappeared; recreating it`);
      this.serialize(() => this.program());
    }, { onError: (e) => o.log.error(`kernel vxlan: watching ${this.dev}: ${e instanceof Error ? e.message : String(e)}`) });
  }

  private sync(): Promise<{ added: number; removed: number }> {
    return syncPeers({ dev: this.dev, directRouting: this.o.directRouting, log: this.o.log }, [...this.peers.values()]);
  }

  private serialize(fn: () => Promise<unknown>): Promise<unknown> {
    this.chain = this.chain.then(fn).catch((e: unknown) => {
      this.o.log.error(`kernel vxlan: ${e instanceof Error ? e.message : String(e)}`);
    });
    return this.chain;
  }

  /** Applies peer changes (key = subnet text); null removes. Resolves once the kernel has them. */
  async update(changes: ReadonlyMap<string, VxlanPeer | null>): Promise<void> {
    for (const [key, p] of changes) {
      if (p === null) this.peers.delete(key);
      else this.peers.set(key, p);
    }
    await this.serialize(() => this.sync());
  }

  /**
   * Stops watching. The device stays, as flanneld leaves it, so a restart
   * reuses it — unless `failedStart` and this run made it: then it goes.
   * Resolves true when the device was removed.
   */
  async stop(failedStart: boolean): Promise<boolean> {
    this.stopped = true;
    this.watch?.stop();
    this.watch = null;
    await this.chain;
    if (!failedStart || !this.created) return false;
    await iproute('ip', ['link', 'del', 'dev', this.dev]).catch((e: unknown) => {
      this.o.log.error(`kernel vxlan: removing ${this.dev} after the failed start: ${e instanceof Error ? e.message : String(e)}`);
    });
    return true;
  }
}
