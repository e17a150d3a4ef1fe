/**
 * weft's embedded lease store: the leases of every node of one machine (or
 * of a small static cluster sharing a filesystem) as files in one
 * directory. Same semantics as flannel's etcd store (docs/design.md §1.2):
 *
 * - one file per lease, named by flannel's key ("10.244.1.0-24"), holding
 *   exactly flannel's lease value JSON;
 * - expiration = file mtime + TTL; renew = utimes; expired leases are free;
 * - several daemons (separate processes) may acquire at the same time and
 *   must never end up with the same subnet.
 *
 * How the last point holds without a lock server:
 * - A lease file is written to a unique temp file first, then published
 *   with link() (fails with EEXIST atomically) or rename() (atomic
 *   replace), so readers never see a half-written file and a lease name
 *   never goes missing while it is being taken over.
 * - Every change of a lease name (create, take-over of an expired lease,
 *   attribute update, renew, release) happens while holding a per-subnet
 *   claim file ".claim-<key>" created with O_EXCL, and re-reads the lease
 *   under the claim before deciding. A bare "rename the expired file to a
 *   tombstone" is not enough on its own: a slow reclaimer that saw the old
 *   expired file can rename away the fresh file a faster one just made,
 *   and putting it back races with plain creators. Under the claim the
 *   re-read sees the fresh file and gives up.
 * - A claim lives for a few system calls; one older than STALE_CLAIM_MS
 *   belongs to a process that died holding it and is removed. (Two daemons
 *   breaking the same stale claim at the same instant could both proceed;
 *   that needs a crash inside those few system calls first.)
 *
 * All daemons sharing a directory must use the same TTL (expiry is
 * computed by each reader from the mtime). Files are not fsync'ed: after a
 * machine crash every daemon re-acquires anyway.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fsError, WeftError } from '../errors.js';
import { formatIpv4, formatIpv4Prefix, type Ipv4Prefix } from '../wire/ipv4-addr.js';
import { chooseSubnet, isSubnetCompatible } from './allocate.js';
import { decodeLeaseAttrs, encodeLeaseAttrs, LeaseDecoder, parseSubnetKey, subnetKey, type Lease, type LeaseAttrs } from './lease.js';
import type { AcquireOptions, LeaseNetConf, LeaseStore, PeerEvent } from './store.js';
import { SILENT, type Log } from '../log.js';
import { readNetConfText } from '../config/net-conf.js';

export const DEFAULT_LEASE_DIR = '/var/lib/weft/leases';
export const DEFAULT_LEASE_TTL_MS = 24 * 60 * 60 * 1000;
export const DEFAULT_LEASE_POLL_MS = 250;
/** Acquire attempts (rescan + pick + claim) before giving up on contention. */
const ACQUIRE_TRIES = 25;
/** A claim older than this was left by a process that died holding it. */
const STALE_CLAIM_MS = 10_000;
/** Temp files older than this were left by a process that died writing them. */
const STALE_TEMP_MS = 60_000;
/**
 * A lease file modified this recently is read again on every poll even
 * when its inode, size and mtime look unchanged: a rewrite in place with
 * the same length in the same millisecond (or one read half-written)
 * leaves all three as the watch cached them.
 */
const RECENT_WRITE_MS = 2_000;
/** How long renew/release wait for a busy claim. */
const CLAIM_WAIT_MS = 3_000;

const TMP_PREFIX = '.tmp-';
const CLAIM_PREFIX = '.claim-';

export interface LocalLeaseStoreOptions {
  dir: string;
  netConfPath: string;
  /** Lease lifetime; default 24 h (flannel's etcd TTL). */
  ttlMs?: number;
  /** Directory poll interval of watch(); default 250 ms. */
  pollMs?: number;
  /** [0, 1) source for the subnet pick; default Math.random. */
  random?: () => number;
  /** Warnings about lease files that are not flannel leases. */
  log?: Log;
}

/** One lease file as read from the directory. */
interface Entry {
  name: string;
  subnet: Ipv4Prefix;
  ino: number;
  size: number;
  mtimeMs: number;
  text: string;
  /** null when the content is not a flannel lease value. */
  attrs: LeaseAttrs | null;
}

function errCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}

function tryDecode(text: string): LeaseAttrs | null {
  try {
    return decodeLeaseAttrs(text);
  } catch {
    return null;
  }
}

function sameSubnet(a: Ipv4Prefix, b: Ipv4Prefix): boolean {
  return a.addr === b.addr && a.len === b.len;
}

function revoked(p: Ipv4Prefix, why: string): WeftError {
  return new WeftError('EREVOKED', `lease ${formatIpv4Prefix(p)} is no longer ours (${why}); acquire a new one`);
}

export class LocalLeaseStore implements LeaseStore {
  readonly dir: string;
  readonly netConfPath: string;
  readonly configSource: string;
  errors = 0;
  private readonly decoder: LeaseDecoder;
  private readonly log: Log;
  readonly ttlMs: number;
  readonly pollMs: number;
  private readonly random: () => number;
  private readonly stops = new Set<() => void>();

  constructor(opts: LocalLeaseStoreOptions) {
    this.dir = opts.dir;
    this.netConfPath = opts.netConfPath;
    this.configSource = opts.netConfPath;
    this.log = opts.log ?? SILENT;
    this.decoder = new LeaseDecoder(this.log);
    this.ttlMs = opts.ttlMs ?? DEFAULT_LEASE_TTL_MS;
    this.pollMs = opts.pollMs ?? DEFAULT_LEASE_POLL_MS;
    this.random = opts.random ?? Math.random;
  }

  async getNetworkConfig(): Promise<string> {
    return readNetConfText(this.netConfPath, false);
  }


  async acquire(conf: LeaseNetConf, opts: AcquireOptions): Promise<Lease> {
    return this.naming(this.acquireIn(conf, opts));
  }

  /** File-system errors from `work` name the lease directory and the fix. */
  private async naming<T>(work: Promise<T>): Promise<T> {
    try {
      return await work;
    } catch (e) {
      throw fsError(e, `the lease directory ${this.dir} (--lease-dir)`);
    }
  }

  private async acquireIn(conf: LeaseNetConf, opts: AcquireOptions): Promise<Lease> {
    await this.ensureDir();
    await this.sweepTemps();
    const ip = opts.attrs.publicIp;
    const text = encodeLeaseAttrs(opts.attrs);
    for (let attempt = 0; attempt < ACQUIRE_TRIES; attempt++) {
      // Back off a little so concurrent acquirers do not rescan in lockstep.
      if (attempt > 0) await sleep(2 + Math.floor(Math.random() * 20));
      const now = Date.now();
      const entries = await this.scan();
      let live = entries.filter((e) => !this.expired(e, now));
      let reuse: Ipv4Prefix | null = null;

      // 1. A lease held by our PublicIP (a live one first): same node, reuse.
      const mine = live.find((e) => e.attrs?.publicIp === ip) ?? entries.find((e) => e.attrs?.publicIp === ip);
      if (mine !== undefined) {
        if (isSubnetCompatible(conf, mine.subnet)) {
          reuse = mine.subnet;
        } else {
          // flannel deletes a lease of ours that the config no longer allows.
          await this.removeIfHeldBy(mine.subnet, ip);
          live = live.filter((e) => e !== mine);
        }
      }
      // 1b. None of ours, but subnet.env's lease is held by the PublicIP this node
      //     published with it: the node's address changed. Keep its subnet, with the new PublicIP.
      const prev = reuse === null && opts.previous !== null && (opts.previousPublicIp ?? null) !== null
        ? live.find((e) => e.attrs?.publicIp === opts.previousPublicIp && sameSubnet(e.subnet, opts.previous!)) : undefined;
      if (prev !== undefined && isSubnetCompatible(conf, prev.subnet)) {
        const old = prev.attrs!.publicIp;
        const lease = await this.tryTake(prev.subnet, text, opts.attrs, old);
        if (lease === null) continue;
        this.log.warn(`lease ${formatIpv4Prefix(prev.subnet)} named in the old subnet.env was held by PublicIP ${formatIpv4(old)}: `
          + `this node's address changed to ${formatIpv4(ip)}; the lease is kept with the new PublicIP`);
        return lease;
      }
      // 2./3. The old subnet.env's subnet if free, else a random pick.
      const target = reuse ?? chooseSubnet(conf, live.map((e) => e.subnet), opts.previous, this.random,
        `live leases in ${this.dir}`);
      const lease = await this.tryTake(target, text, opts.attrs);
      if (lease !== null) return lease;
    }
    throw new WeftError(
      'ELEASE',
      `could not acquire a lease in ${this.dir} after ${ACQUIRE_TRIES} attempts: other daemons kept taking the picked subnets; retry`,
    );
  }

  async renew(lease: Lease): Promise<Lease> {
    const key = subnetKey(lease.subnet);
    const path = join(this.dir, key);
    return this.naming(this.withClaimWait(key, async () => {
      let fh: fsp.FileHandle;
      try {
        fh = await fsp.open(path, 'r');
      } catch (e) {
        if (errCode(e) === 'ENOENT') throw revoked(lease.subnet, `${path} is gone`);
        throw e;
      }
      try {
        const attrs = tryDecode(await fh.readFile('utf8'));
        if (attrs === null || attrs.publicIp !== lease.attrs.publicIp) {
          throw revoked(lease.subnet, `${path} now belongs to ${attrs === null ? 'garbage' : formatIpv4(attrs.publicIp)}`);
        }
        const now = Date.now();
        await fh.utimes(now / 1000, now / 1000);
        return { subnet: lease.subnet, attrs: lease.attrs, expiration: now + this.ttlMs };
      } finally {
        await fh.close();
      }
    }));
  }

  watch(own: Lease, onEvents: (events: PeerEvent[]) => void, onRevoked: () => void): () => void {
    const ownKey = subnetKey(own.subnet);
    const ownIp = own.attrs.publicIp;
    const cache = new Map<string, Entry>();
    let view = new Map<string, Entry>();
    let first = true;
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;

    const stop = (): void => {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      this.stops.delete(stop);
    };
    const schedule = (): void => {
      if (!stopped) timer = setTimeout(() => void poll(), this.pollMs);
    };
    const poll = async (): Promise<void> => {
      let entries: Entry[];
      try {
        entries = await this.scan(cache);
      } catch (e) {
        // A missing directory means every lease is gone (ours included);
        // anything else (EIO, EACCES for a moment) is retried next poll.
        if (errCode(e) !== 'ENOENT') {
          this.errors++;
          schedule();
          return;
        }
        entries = [];
      }
      if (stopped) return;
      const now = Date.now();
      const mine = entries.find((e) => e.name === ownKey);
      if (mine === undefined || mine.attrs?.publicIp !== ownIp || this.expired(mine, now)) {
        stop();
        onRevoked();
        return;
      }
      const next = new Map<string, Entry>();
      for (const e of entries) {
        if (e.name !== ownKey && e.attrs !== null && !this.expired(e, now)) next.set(e.name, e);
      }
      const events: PeerEvent[] = [];
      for (const [name, e] of next) {
        const old = view.get(name);
        // Content covers PublicIP and backend data; a renewal (mtime only) is no event.
        if (old === undefined) events.push({ type: 'added', lease: this.toLease(e) });
        else if (old.text !== e.text) events.push({ type: 'changed', lease: this.toLease(e) });
      }
      for (const [name, old] of view) {
        if (!next.has(name)) events.push({ type: 'removed', lease: this.toLease(old) });
      }
      view = next;
      // Schedule before calling out, so a throwing callback does not end the watch.
      schedule();
      if (first || events.length > 0) {
        first = false;
        onEvents(events);
      }
    };
    this.stops.add(stop);
    void poll();
    return stop;
  }

  async release(lease: Lease): Promise<void> {
    await this.naming(this.removeIfHeldBy(lease.subnet, lease.attrs.publicIp));
  }

  async close(): Promise<void> {
    for (const stop of [...this.stops]) stop();
  }

  // ---- internals -------------------------------------------------------

  private expired(e: Entry, now: number): boolean {
    return e.mtimeMs + this.ttlMs <= now;
  }

  private toLease(e: Entry): Lease {
    return { subnet: e.subnet, attrs: e.attrs as LeaseAttrs, expiration: e.mtimeMs + this.ttlMs };
  }

  private async ensureDir(): Promise<void> {
    const created = await fsp.mkdir(this.dir, { recursive: true, mode: 0o755 });
    // mkdir's mode is filtered by the umask; the brief is 0755 regardless.
    if (created !== undefined) await fsp.chmod(this.dir, 0o755);
  }

  /** Reads one lease file; content and stat come from the same open file. */
  private async readEntry(name: string, subnet: Ipv4Prefix): Promise<Entry | null> {
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(join(this.dir, name), 'r');
    } catch (e) {
      if (errCode(e) === 'ENOENT') return null;
      throw e;
    }
    try {
      const st = await fh.stat();
      const text = await fh.readFile('utf8');
      return { name, subnet, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, text, attrs: this.decoder.decode(join(this.dir, name), text) };
    } finally {
      await fh.close();
    }
  }

  /**
   * Every lease file of the directory. With a cache (watch), a file whose
   * inode, size and mtime did not change is not read again, unless it was
   * modified within RECENT_WRITE_MS.
   */
  private async scan(cache?: Map<string, Entry>): Promise<Entry[]> {
    const names = await fsp.readdir(this.dir);
    const seen = new Set<string>();
    const out = await Promise.all(
      names.map(async (name): Promise<Entry | null> => {
        const subnet = parseSubnetKey(name);
        // Only canonical names: one subnet must have exactly one file name,
        // or link()'s EEXIST would not exclude a second holder.
        if (subnet === null || subnetKey(subnet) !== name) return null;
        seen.add(name);
        if (cache !== undefined) {
          const old = cache.get(name);
          if (old !== undefined) {
            const st = await fsp.stat(join(this.dir, name)).catch(() => null);
            if (st === null) return null;
            if (st.ino === old.ino && st.size === old.size && st.mtimeMs === old.mtimeMs &&
              Date.now() - st.mtimeMs > RECENT_WRITE_MS) return old;
          }
        }
        const e = await this.readEntry(name, subnet);
        if (e !== null && cache !== undefined) cache.set(name, e);
        return e;
      }),
    );
    if (cache !== undefined) for (const name of cache.keys()) if (!seen.has(name)) cache.delete(name);
    return out.filter((e): e is Entry => e !== null);
  }

  /** Removes temp files left by a daemon that died while writing one. */
  private async sweepTemps(): Promise<void> {
    const now = Date.now();
    for (const name of await fsp.readdir(this.dir)) {
      if (!name.startsWith(TMP_PREFIX)) continue;
      const path = join(this.dir, name);
      const st = await fsp.stat(path).catch(() => null);
      if (st !== null && now - st.mtimeMs > STALE_TEMP_MS) await fsp.unlink(path).catch(() => undefined);
    }
  }

  /** A complete lease file under a unique temporary name, mtime = now. */
  private async writeTemp(key: string, text: string): Promise<{ path: string; now: number }> {
    const path = join(this.dir, `${TMP_PREFIX}${key}-${process.pid}-${randomBytes(6).toString('hex')}`);
    const fh = await fsp.open(path, 'wx', 0o644);
    const now = Date.now();
    try {
      await fh.writeFile(text);
      await fh.utimes(now / 1000, now / 1000);
    } catch (e) {
      // A full disk must not leave an empty temp file behind.
      await fh.close();
      await fsp.unlink(path).catch(() => undefined);
      throw e;
    }
    await fh.close();
    return { path, now };
  }

  /**
   * Takes `target` for `attrs` if, under its claim, it is free, expired or
   * already ours (same PublicIP). null = lost to another daemon; retry.
   */
  /** Takes `target` when it is free, expired, ours, or held by `takeOverFrom` (our previous PublicIP). */
  private async tryTake(target: Ipv4Prefix, text: string, attrs: LeaseAttrs, takeOverFrom = -1): Promise<Lease | null> {
    const key = subnetKey(target);
    const path = join(this.dir, key);
    const tmp = await this.writeTemp(key, text);
    try {
      if (!(await this.claim(key))) return null;
      try {
        const cur = await this.readEntry(key, target);
        if (cur === null) {
          try {
            await fsp.link(tmp.path, path);
          } catch (e) {
            if (errCode(e) === 'EEXIST') return null;
            throw e;
          }
        } else if (this.expired(cur, Date.now()) || cur.attrs?.publicIp === attrs.publicIp || cur.attrs?.publicIp === takeOverFrom) {
          // Atomic replace: the name never goes missing, so no creator can
          // slip in between, and watchers see old or new content.
          await fsp.rename(tmp.path, path);
        } else {
          return null;
        }
        return { subnet: target, attrs: { ...attrs }, expiration: tmp.now + this.ttlMs };
      } finally {
        await this.unclaim(key);
      }
    } finally {
      await fsp.unlink(tmp.path).catch(() => undefined); // ENOENT after rename
    }
  }

  /** Deletes the lease file of `subnet` if it is held by `publicIp`. */
  private async removeIfHeldBy(subnet: Ipv4Prefix, publicIp: number): Promise<void> {
    const key = subnetKey(subnet);
    await this.withClaimWait(key, async () => {
      const cur = await this.readEntry(key, subnet);
      if (cur === null || cur.attrs?.publicIp !== publicIp) return; // not ours (any more)
      await fsp.unlink(join(this.dir, key)).catch((e: unknown) => {
        if (errCode(e) !== 'ENOENT') throw e;
      });
    });
  }

  /** O_EXCL claim on one subnet; false when another daemon holds it. */
  private async claim(key: string): Promise<boolean> {
    const path = join(this.dir, `${CLAIM_PREFIX}${key}`);
    for (let i = 0; i < 2; i++) {
      try {
        const fh = await fsp.open(path, 'wx', 0o644);
        await fh.close();
        return true;
      } catch (e) {
        if (errCode(e) !== 'EEXIST') throw e;
        const st = await fsp.stat(path).catch(() => null);
        if (st !== null && Date.now() - st.mtimeMs < STALE_CLAIM_MS) return false;
        // Left by a daemon that died between claim and unclaim.
        await fsp.unlink(path).catch(() => undefined);
      }
    }
    return false;
  }

  private async unclaim(key: string): Promise<void> {
    await fsp.unlink(join(this.dir, `${CLAIM_PREFIX}${key}`)).catch(() => undefined);
  }

  private async withClaimWait<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + CLAIM_WAIT_MS;
    for (;;) {
      let got: boolean;
      try {
        got = await this.claim(key);
      } catch (e) {
        if (errCode(e) === 'ENOENT') throw revoked(parseSubnetKey(key) as Ipv4Prefix, `lease directory ${this.dir} is gone`);
        throw e;
      }
      if (got) break;
      if (Date.now() > deadline) {
        throw new WeftError(
          'ELEASE',
          `lease ${key} in ${this.dir} stayed claimed by another daemon for ${CLAIM_WAIT_MS} ms; if no weft is running, remove ${join(this.dir, CLAIM_PREFIX + key)}`,
        );
      }
      await sleep(5 + Math.floor(Math.random() * 10));
    }
    try {
      return await fn();
    } finally {
      await this.unclaim(key);
    }
  }
}
