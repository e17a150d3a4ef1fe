/**
 * The etcd v3 lease store: the same keys and values flanneld writes, so weft
 * and flanneld nodes share one etcd (docs/design.md §1.2).
 *
 * What this relies on (flannel-io/flannel pkg/subnet/etcd, v0.2x):
 * - config at `<prefix>/config`; leases at `<prefix>/subnets/<10.244.1.0-24>`
 *   holding encodeLeaseAttrs' JSON, attached to an etcd lease of 24 h;
 * - createSubnet: grant a lease, then txn "version(key) == 0 → put(key,
 *   value, lease)"; lost the race → list again and pick again;
 * - updateSubnet (reuse of our own lease, and RenewLease): grant a NEW lease
 *   and put the value with it. The old etcd lease is not revoked; it
 *   expires with no key attached. weft does the same (renew = re-put with a
 *   fresh 24 h lease at expiry − renew margin, as the daemon schedules it),
 *   but inside a txn on the key's mod revision, so a lease that was
 *   deleted or taken over meanwhile is reported (EREVOKED) instead of being
 *   silently written back;
 * - a key without an etcd lease (ID 0) is a reservation: reused and renewed
 *   without a lease, never expires;
 * - getSubnets/watch resolve a peer's expiration with LeaseTimeToLive.
 *
 * The watch is ours, not etcd3's auto-resuming one: every (re)start lists
 * the subnets, diffs against the last known set, and watches from the
 * listing's revision + 1. That one path covers the first listing,
 * compaction (the watch is cancelled with "required revision has been
 * compacted") and reconnects after an outage. While etcd is unreachable
 * nothing is emitted — peers stay routed on their last known leases.
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Etcd3, type IKeyValue, type IOptions, type IWatchResponse, type Watcher } from 'etcd3';
import { WeftError, isWeftError } from '../errors.js';
import { formatIpv4, formatIpv4Prefix, type Ipv4Prefix } from '../wire/ipv4-addr.js';
import { chooseSubnet, isSubnetCompatible } from './allocate.js';
import {
  decodeLeaseAttrs, encodeLeaseAttrs, LeaseDecoder, parseSubnetKey, subnetKey, type Lease, type LeaseAttrs,
} from './lease.js';
import type { AcquireOptions, LeaseNetConf, LeaseStore, PeerEvent } from './store.js';
import { SILENT, type Log } from '../log.js';
import { Backoff } from '../backoff.js';

export const DEFAULT_ETCD_PREFIX = '/coreos.com/network';
/** flanneld's default --etcd-endpoints. */
export const DEFAULT_ETCD_ENDPOINTS: readonly string[] = ['http://127.0.0.1:4001', 'http://127.0.0.1:2379'];
/** flannel's subnetTTL. */
export const DEFAULT_ETCD_TTL_SECONDS = 24 * 60 * 60;
/** How long start-up calls wait for an unreachable etcd before giving up. */
export const DEFAULT_ETCD_CONNECT_TIMEOUT_MS = 10_000;
/** Deadline of one unary call (a stopped etcd must not hang us forever). */
const CALL_TIMEOUT_MS = 5_000;
/** Watch restart backoff: first retry, cap (the brief: ≤ 5 s). */
/** A watch etcd has not confirmed by then is treated as refused (see startWatcher). */
const WATCH_CREATE_TIMEOUT_MS = 3000;
const BACKOFF_MIN_MS = 200;
const BACKOFF_MAX_MS = 5_000;
/** Listing + transaction rounds lost to other acquirers before giving up. */
const ACQUIRE_TRIES = 10;

export interface EtcdLeaseStoreOptions {
  /** --etcd-endpoints, split at commas: all http:// or all https://. */
  endpoints: readonly string[];
  /** --etcd-prefix; default /coreos.com/network. */
  prefix?: string;
  /** --etcd-keyfile / --etcd-certfile / --etcd-cafile (https endpoints only). */
  keyFile?: string;
  certFile?: string;
  caFile?: string;
  /** --etcd-username / --etcd-password. */
  username?: string;
  password?: string;
  /** etcd lease TTL; default 86400 (flannel's 24 h). */
  ttlSeconds?: number;
  /** [0, 1) source for the subnet pick; default Math.random. */
  random?: () => number;
  /** How long getNetworkConfig/acquire retry an unreachable etcd; default 10 s. */
  connectTimeoutMs?: number;
  /** Outage / recovery notes of the watch (the daemon's logger). */
  log?: Log;
  /**
   * Tests only: awaited after each watch listing, before the watch starts
   * (lets a test compact etcd in exactly that window).
   */
  beforeWatch?: (fromRevision: string) => Promise<void>;
}

/** The flanneld flags a daemon maps onto EtcdLeaseStoreOptions (names as in src/config/flags.ts). */
export interface EtcdFlags {
  etcdEndpoints: string;
  etcdPrefix: string;
  etcdKeyfile: string;
  etcdCertfile: string;
  etcdCafile: string;
  etcdUsername: string;
  etcdPassword: string;
}

/** --etcd-* flags → store options (empty strings = not given, as flanneld treats them). */
export function etcdOptionsFromFlags(f: EtcdFlags, extra: Partial<EtcdLeaseStoreOptions> = {}): EtcdLeaseStoreOptions {
  const o: EtcdLeaseStoreOptions = {
    ...extra,
    endpoints: f.etcdEndpoints.split(',').map((s) => s.trim()).filter((s) => s !== ''),
    prefix: f.etcdPrefix,
  };
  if (f.etcdKeyfile !== '') o.keyFile = f.etcdKeyfile;
  if (f.etcdCertfile !== '') o.certFile = f.etcdCertfile;
  if (f.etcdCafile !== '') o.caFile = f.etcdCafile;
  if (f.etcdUsername !== '') o.username = f.etcdUsername;
  if (f.etcdPassword !== '') o.password = f.etcdPassword;
  return o;
}

/** A cockatiel-shaped policy that just runs the call (async, so a sync throw becomes a rejection). */
const PASS_THROUGH = {
  async execute<T>(fn: (ctx: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> {
    return fn({ signal: new AbortController().signal });
  },
};

function tryDecode(text: string): LeaseAttrs | null {
  try {
    return decodeLeaseAttrs(text);
  } catch {
    return null;
  }
}

function msgOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** One key under <prefix>/subnets/ as listed. */
interface Entry {
  key: string;
  subnet: Ipv4Prefix;
  /** The key is exactly subnetKey(subnet) (not a dual-stack "…&ipv6" key). */
  canonical: boolean;
  kv: IKeyValue;
  text: string;
  attrs: LeaseAttrs | null;
}

/** A peer as the watch last reported it. */
interface Known {
  text: string;
  lease: Lease;
}

function readPem(path: string, flag: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new WeftError('ECONFIG', `cannot read ${flag} ${path}: ${msgOf(e)}`, { cause: e });
  }
}

export class EtcdLeaseStore implements LeaseStore {
  readonly endpoints: readonly string[];
  readonly prefix: string;
  readonly configKey: string;
  readonly configSource: string;
  errors = 0;
  private closed = false;
  /** `<prefix>/subnets/` — every lease key starts with it. */
  readonly subnetsPrefix: string;
  readonly ttlSeconds: number;
  /** The raw etcd3 client (tests use it to write leases as flanneld would). */
  readonly client: Etcd3;
  private readonly random: () => number;
  private readonly connectTimeoutMs: number;
  private readonly log: Log;
  private readonly decoder: LeaseDecoder;
  private readonly beforeWatch: ((fromRevision: string) => Promise<void>) | undefined;
  private readonly stops = new Set<() => Promise<void>>();

  constructor(opts: EtcdLeaseStoreOptions) {
    const endpoints = opts.endpoints.map((s) => s.trim()).filter((s) => s !== '');
    if (endpoints.length === 0) {
      throw new WeftError('EUSAGE', '--etcd-endpoints is empty: give a comma-separated list such as http://127.0.0.1:2379');
    }
    const tls = endpoints.map((e) => {
      if (/^https:\/\//i.test(e)) return true;
      if (/^http:\/\//i.test(e)) return false;
      throw new WeftError('EUSAGE', `--etcd-endpoints: "${e}" needs a scheme: http://host:port (plain) or https://host:port (TLS)`);
    });
    if (tls.some((t) => t) && tls.some((t) => !t)) {
      throw new WeftError('EUSAGE', `--etcd-endpoints mixes http:// and https:// (${endpoints.join(',')}); use one scheme for all`);
    }
    this.endpoints = endpoints;
    this.prefix = (opts.prefix ?? DEFAULT_ETCD_PREFIX).replace(/\/+$/, '');
    this.configKey = `${this.prefix}/config`;
    this.configSource = `etcd key ${this.configKey}`;
    this.subnetsPrefix = `${this.prefix}/subnets/`;
    this.ttlSeconds = opts.ttlSeconds ?? DEFAULT_ETCD_TTL_SECONDS;
    this.random = opts.random ?? Math.random;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? DEFAULT_ETCD_CONNECT_TIMEOUT_MS;
    this.log = opts.log ?? SILENT;
    this.decoder = new LeaseDecoder(this.log);
    this.beforeWatch = opts.beforeWatch;

    const o: IOptions = {
      hosts: [...endpoints],
      // Unary calls get a deadline; the watch stream must not (it lives for days).
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + CALL_TIMEOUT_MS }),
      // HTTP/2 pings notice a silently dead etcd (SIGSTOP, a cut cable) on the
      // watch stream; etcd's default --grpc-keepalive-min-time is 5 s.
      grpcOptions: { 'grpc.keepalive_time_ms': 10_000, 'grpc.keepalive_timeout_ms': 5_000 },
      // etcd3's default per-host circuit breaker refuses every call for 5 s
      // after 3 failures, which would delay the catch-up after an outage
      // on top of our own backoff; the retries here and in watch() suffice.
      faultHandling: { host: () => PASS_THROUGH as never },
    };
    if (tls[0] === true) {
      const ca = opts.caFile !== undefined ? readPem(opts.caFile, '--etcd-cafile') : undefined;
      const key = opts.keyFile !== undefined ? readPem(opts.keyFile, '--etcd-keyfile') : undefined;
      const cert = opts.certFile !== undefined ? readPem(opts.certFile, '--etcd-certfile') : undefined;
      if ((key === undefined) !== (cert === undefined)) {
        throw new WeftError('EUSAGE', 'client TLS needs both --etcd-keyfile and --etcd-certfile');
      }
      if (ca !== undefined || key !== undefined) {
        // grpc takes null for "system roots"; the typing insists on a Buffer.
        o.credentials = { rootCertificate: (ca ?? null) as Buffer };
        if (key !== undefined) o.credentials.privateKey = key;
        if (cert !== undefined) o.credentials.certChain = cert;
      }
    }
    if (opts.username !== undefined && opts.username !== '') {
      o.auth = { username: opts.username, password: opts.password ?? '' };
    }
    this.client = new Etcd3(o);
  }

  async getNetworkConfig(): Promise<string> {
    const v = await this.retrying('read the network config', () => this.client.get(this.configKey).string());
    if (v === null) {
      throw new WeftError(
        'ECONFIG',
        `network config ${this.configKey} does not exist in etcd (${this.endpoints.join(',')}): put the net-conf JSON there `
          + `with the v3 API, e.g. ETCDCTL_API=3 etcdctl --endpoints=${this.endpoints[0]} put ${this.configKey} `
          + `'{"Network":"10.244.0.0/16","Backend":{"Type":"udp"}}' (ETCDCTL_API=3 is needed on etcdctl 3.4; `
          + 'a key written with the v2 API is invisible to v3 clients), or point --etcd-prefix at the prefix that holds it',
      );
    }
    return v;
  }

  async acquire(conf: LeaseNetConf, opts: AcquireOptions): Promise<Lease> {
    const ip = opts.attrs.publicIp;
    const text = encodeLeaseAttrs(opts.attrs);
    return this.retrying('acquire a lease', async () => {
      for (let attempt = 0; attempt < ACQUIRE_TRIES; attempt++) {
        if (attempt > 0) await sleep(5 + Math.floor(Math.random() * 50));
        let entries = (await this.list()).entries;

        // 1. A lease held by our PublicIP: same node, reuse (update the value if attrs changed).
        const mine = entries.find((e) => e.canonical && e.attrs?.publicIp === ip);
        if (mine !== undefined) {
          if (isSubnetCompatible(conf, mine.subnet)) {
            const l = await this.rewrite(mine, text, opts.attrs);
            if (l !== null) return l;
            continue; // changed under us: list again
          }
          // flannel deletes a lease of ours that the config no longer allows.
          await this.client.if(mine.key, 'Mod', '==', mine.kv.mod_revision).then(this.client.delete().key(mine.key)).commit();
          entries = entries.filter((e) => e !== mine);
        }
        // 1b. None of ours, but subnet.env's lease is held by the PublicIP this node
        //     published with it: the node's address changed. Keep its subnet, with the new PublicIP.
        const prev = mine === undefined && opts.previous !== null && (opts.previousPublicIp ?? null) !== null
          ? entries.find((e) => e.canonical && e.attrs !== null && e.attrs.publicIp === opts.previousPublicIp
            && e.subnet.addr === opts.previous!.addr && e.subnet.len === opts.previous!.len)
          : undefined;
        if (prev !== undefined && isSubnetCompatible(conf, prev.subnet)) {
          const l = await this.rewrite(prev, text, opts.attrs);
          if (l === null) continue; // changed under us: list again
          this.log.warn(`lease ${prev.key} named in the old subnet.env was held by PublicIP ${formatIpv4(prev.attrs!.publicIp)}: `
            + `this node's address changed to ${formatIpv4(ip)}; the lease is kept with the new PublicIP`);
          return l;
        }
        // 2./3. The old subnet.env's subnet if free, else a random pick;
        //    any key (even a value we cannot decode) blocks its subnet.
        const target = chooseSubnet(conf, entries.map((e) => e.subnet), opts.previous, this.random,
          `leases under ${this.subnetsPrefix}`);
        const l = await this.create(target, text, opts.attrs);
        if (l !== null) return l;
      }
      throw new WeftError(
        'ELEASE',
        `could not acquire a lease under ${this.subnetsPrefix} after ${ACQUIRE_TRIES} attempts: other nodes kept taking the picked subnets; retry`,
      );
    });
  }

  async renew(lease: Lease): Promise<Lease> {
    const key = this.keyOf(lease.subnet);
    const text = encodeLeaseAttrs(lease.attrs);
    try {
      for (let attempt = 0; attempt < 3; attempt++) {
        const kv = (await this.client.get(key).exec()).kvs[0];
        if (kv === undefined) throw this.revoked(lease.subnet, `${key} is gone from etcd`);
        const cur = tryDecode(kv.value.toString());
        if (cur === null || cur.publicIp !== lease.attrs.publicIp) {
          throw this.revoked(lease.subnet, `${key} now belongs to ${cur === null ? 'an unreadable value' : formatIpv4(cur.publicIp)}`);
        }
        const l = await this.rewrite(this.entryOf(kv, lease.subnet), text, lease.attrs);
        if (l !== null) return l;
      }
      throw new WeftError('EETCD', `renewing ${key}: the key kept changing under us; will retry`);
    } catch (e) {
      if (isWeftError(e)) throw e;
      throw new WeftError('EETCD', `renewing ${key} in etcd (${this.endpoints.join(',')}) failed: ${msgOf(e)}`, { cause: e });
    }
  }

  watch(own: Lease, onEvents: (events: PeerEvent[]) => void, onRevoked: () => void): () => void {
    const ownKey = this.keyOf(own.subnet);
    const ownIp = own.attrs.publicIp;
    let known = new Map<string, Known>();
    /** Peer expirations by etcd lease ID (one LeaseTimeToLive per lease, as flannel). */
    let expiries = new Map<string, number>();
    let first = true;
    let stopped = false;
    let watcher: Watcher | null = null;
    let timer: NodeJS.Timeout | undefined;
    const backoff = new Backoff(BACKOFF_MIN_MS, BACKOFF_MAX_MS);
    let outage = false;
    // Watch responses are handled one after another: expirations are looked up asynchronously.
    let chain: Promise<void> = Promise.resolve();

    const stopAsync = async (): Promise<void> => {
      if (stopped) return;
      stopped = true;
      this.stops.delete(stopAsync);
      if (timer !== undefined) clearTimeout(timer);
      const w = watcher;
      watcher = null;
      // detach() waits for etcd's confirmation; do not hang a shutdown on it.
      if (w !== null) await Promise.race([w.cancel().catch(() => undefined), sleep(1000)]);
    };
    const revoke = (): void => {
      if (stopped) return;
      void stopAsync();
      onRevoked();
    };
    const emit = (events: PeerEvent[]): void => {
      if (stopped || (!first && events.length === 0)) return;
      first = false;
      try {
        onEvents(events);
      } catch (e) {
        this.log.error(`etcd watch: the peer event handler threw: ${msgOf(e)}`);
      }
    };
    const expiry = async (leaseId: string): Promise<number> => {
      const fallback = Date.now() + this.ttlSeconds * 1000;
      if (leaseId === '0') return fallback; // a reservation: no expiry
      const hit = expiries.get(leaseId);
      if (hit !== undefined) return hit;
      try {
        const r = await this.client.leaseClient.leaseTimeToLive({ ID: leaseId });
        const ttl = Number(r.TTL);
        const v = ttl > 0 ? Date.now() + ttl * 1000 : fallback;
        expiries.set(leaseId, v);
        return v;
      } catch {
        return fallback; // not worth failing a route update over
      }
    };
    let attempts = 0;
    let lastWhy = '';
    const restart = (why: string): void => {
      if (stopped) return;
      this.errors++;
      const wait = backoff.next();
      if (!outage) {
        outage = true;
        attempts = 0;
        lastWhy = why;
        this.log.warn(`etcd watch interrupted (${why}); keeping the ${known.size} known peers, re-listing with backoff`);
      } else {
        // Logged when the reason changes, not per attempt: the outage's
        // start and end are logged, and the attempts count is in the end line.
        attempts++;
        if (why !== lastWhy) this.log.warn(`etcd re-list attempt ${attempts} failed (${why}); retrying with backoff, next in ${wait} ms`);
        lastWhy = why;
      }
      if (timer !== undefined) clearTimeout(timer);
      timer = setTimeout(() => void resync(), wait);
    };

    const handle = (res: IWatchResponse): void => {
      const out: PeerEvent[] = [];
      for (const ev of res.events) {
        if (stopped) return;
        const key = ev.kv.key.toString();
        if (!key.startsWith(this.subnetsPrefix)) continue;
        if (key === ownKey) {
          const cur = ev.type === 'Put' ? tryDecode(ev.kv.value.toString()) : null;
          // Deleted (by hand or by expiry) or taken over: the lease is gone.
          if (cur === null || cur.publicIp !== ownIp) {
            emit(out);
            revoke();
            return;
          }
          continue; // our own renewal
        }
        const subnet = parseSubnetKey(key.slice(this.subnetsPrefix.length));
        if (subnet === null) continue;
        const old = known.get(key);
        const text = ev.type === 'Put' ? ev.kv.value.toString() : '';
        const attrs = ev.type === 'Put' ? this.decoder.decode(key, text) : null;
        if (attrs === null) {
          // Deleted, expired, or overwritten with something that is not a lease.
          if (old !== undefined) {
            known.delete(key);
            out.push({ type: 'removed', lease: old.lease });
          }
          continue;
        }
        // A peer's expiration is for display only: the event goes out at once
        // and the lookup fills it in (a burst of new leases is a burst of lookups).
        const cached = expiries.get(ev.kv.lease);
        const lease: Lease = { subnet, attrs, expiration: cached ?? Date.now() + this.ttlSeconds * 1000 };
        if (cached === undefined) void expiry(ev.kv.lease).then((v) => { lease.expiration = v; });
        known.set(key, { text, lease });
        // A renewal re-puts the same value with a new lease: no event.
        if (old === undefined) out.push({ type: 'added', lease });
        else if (old.text !== text) out.push({ type: 'changed', lease });
      }
      emit(out);
    };

    const startWatcher = (fromRevision: string): void => {
      // Every watch gets a stream of its own: etcd3 runs one per namespace
      // object (and ends it with its last watcher). After a cancellation --
      // a compaction, or a "created and cancelled at once" answer, which
      // etcd3 matches to the first pending watcher of the stream -- a stream
      // may never send another create request; the watch after a
      // compaction's re-list was once seen to deliver nothing. A new watch
      // happens only at start and after a re-list, so this costs little.
      const w = this.client.namespace('').watch().prefix(this.subnetsPrefix).startRevision(fromRevision).watcher();
      watcher = w;
      // A watch that never gets going is treated as refused, so the re-list
      // still happens.
      const notCreated = setTimeout(() => {
        if (watcher !== w || stopped) return;
        watcher = null;
        void w.cancel().catch(() => undefined);
        restart(`the watch from revision ${fromRevision} was not established within ${WATCH_CREATE_TIMEOUT_MS} ms`);
      }, WATCH_CREATE_TIMEOUT_MS);
      notCreated.unref();
      w.on('connected', () => {
        clearTimeout(notCreated);
        if (watcher === w) backoff.reset();
      });
      w.on('data', (res: IWatchResponse) => {
        if (watcher !== w) return;
        chain = chain.then(() => handle(res)).catch((e: unknown) => this.log.error(`etcd watch: ${msgOf(e)}`));
      });
      // etcd cancelled the watch (compaction: "required revision has been
      // compacted", or any other reason); etcd3 already dropped it.
      w.on('error', (e: Error) => {
        clearTimeout(notCreated);
        if (watcher !== w) return;
        watcher = null;
        // etcd3 reports a compaction as "Watcher canceled: " with no reason.
        const reason = msgOf(e).replace(/^Watcher canceled:\s*/, '');
        restart(`watch cancelled by etcd: ${reason || 'the watched revision was compacted'}`);
      });
      // The stream broke (etcd down, network): stop etcd3's own resume and re-list instead.
      w.on('disconnected', (e: Error) => {
        clearTimeout(notCreated);
        if (watcher !== w) return;
        watcher = null;
        void w.cancel().catch(() => undefined);
        restart(msgOf(e));
      });
    };

    const resync = async (): Promise<void> => {
      timer = undefined;
      let listing: { entries: Entry[]; revision: string };
      try {
        listing = await this.list();
      } catch (e) {
        restart(msgOf(e));
        return;
      }
      if (stopped) return;
      // Let responses of an older watcher finish first, then replace the state.
      await chain;
      if (stopped) return;
      const mine = listing.entries.find((e) => e.key === ownKey);
      if (mine === undefined || mine.attrs?.publicIp !== ownIp) {
        this.log.warn(`etcd re-list at revision ${listing.revision}: our lease ${ownKey} is ${mine === undefined ? 'gone' : 'held by another PublicIP'}`);
        revoke();
        return;
      }
      const next = new Map<string, Known>();
      const liveIds = new Set<string>();
      for (const e of listing.entries) {
        if (e.key === ownKey || e.attrs === null) continue;
        liveIds.add(e.kv.lease);
        next.set(e.key, { text: e.text, lease: { subnet: e.subnet, attrs: e.attrs, expiration: 0 } });
      }
      const pruned = new Map<string, number>();
      for (const [id, v] of expiries) if (liveIds.has(id)) pruned.set(id, v);
      expiries = pruned;
      await Promise.all(listing.entries.map(async (e) => {
        const k = next.get(e.key);
        if (k !== undefined) k.lease.expiration = await expiry(e.kv.lease);
      }));
      if (stopped) return;
      const events: PeerEvent[] = [];
      for (const [key, k] of next) {
        const old = known.get(key);
        if (old === undefined) events.push({ type: 'added', lease: k.lease });
        else if (old.text !== k.text) events.push({ type: 'changed', lease: k.lease });
      }
      for (const [key, old] of known) if (!next.has(key)) events.push({ type: 'removed', lease: old.lease });
      known = next;
      if (outage) {
        outage = false;
        this.log.info(`etcd watch resumed at revision ${listing.revision} after ${attempts + 1} attempts: `
          + `${events.length} changes caught up, ${known.size} peers`);
      }
      emit(events);
      const from = (BigInt(listing.revision) + 1n).toString();
      if (this.beforeWatch !== undefined) await this.beforeWatch(from).catch(() => undefined);
      if (!stopped) startWatcher(from);
    };

    this.stops.add(stopAsync);
    void resync();
    return () => void stopAsync();
  }

  async release(lease: Lease): Promise<void> {
    const key = this.keyOf(lease.subnet);
    try {
      const kv = (await this.client.get(key).exec()).kvs[0];
      if (kv === undefined || tryDecode(kv.value.toString())?.publicIp !== lease.attrs.publicIp) return; // not ours any more
      const r = await this.client.if(key, 'Mod', '==', kv.mod_revision).then(this.client.delete().key(key)).commit();
      if (r.succeeded && kv.lease !== '0') {
        await this.client.leaseClient.leaseRevoke({ ID: kv.lease }).catch(() => undefined);
      }
    } catch (e) {
      throw new WeftError('EETCD', `releasing ${key} in etcd (${this.endpoints.join(',')}) failed: ${msgOf(e)}`, { cause: e });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.stops].map((s) => s()));
    this.client.close();
  }

  // ---- internals -------------------------------------------------------

  private keyOf(p: Ipv4Prefix): string {
    return this.subnetsPrefix + subnetKey(p);
  }

  private revoked(p: Ipv4Prefix, why: string): WeftError {
    return new WeftError('EREVOKED', `lease ${formatIpv4Prefix(p)} is no longer ours (${why}); acquire a new one`);
  }

  private entryOf(kv: IKeyValue, subnet: Ipv4Prefix): Entry {
    const key = kv.key.toString();
    const text = kv.value.toString();
    return { key, subnet, canonical: key === this.keyOf(subnet), kv, text, attrs: this.decoder.decode(key, text) };
  }

  /** Every lease key under <prefix>/subnets/ and the revision of the listing. */
  private async list(): Promise<{ entries: Entry[]; revision: string }> {
    const res = await this.client.getAll().prefix(this.subnetsPrefix).exec();
    const entries: Entry[] = [];
    for (const kv of res.kvs) {
      const subnet = parseSubnetKey(kv.key.toString().slice(this.subnetsPrefix.length));
      if (subnet !== null) entries.push(this.entryOf(kv, subnet));
    }
    return { entries, revision: res.header.revision };
  }

  /**
   * flannel's createSubnet: a fresh etcd lease, then "create if absent".
   * null = someone else created the key first.
   */
  private async create(subnet: Ipv4Prefix, text: string, attrs: LeaseAttrs): Promise<Lease | null> {
    const key = this.keyOf(subnet);
    const t0 = Date.now();
    const g = await this.client.leaseClient.leaseGrant({ TTL: this.ttlSeconds, ID: 0 });
    const r = await this.client.if(key, 'Version', '==', 0)
      .then(this.client.put(key).value(text).lease(g.ID))
      .commit();
    if (!r.succeeded) {
      await this.client.leaseClient.leaseRevoke({ ID: g.ID }).catch(() => undefined);
      return null;
    }
    return { subnet, attrs: { ...attrs }, expiration: t0 + Number(g.TTL) * 1000 };
  }

  /**
   * flannel's updateSubnet: put the value again with a NEW etcd lease (none
   * for a reservation), guarded by the key's mod revision. null = the key
   * changed since `e` was read.
   */
  private async rewrite(e: Entry, text: string, attrs: LeaseAttrs): Promise<Lease | null> {
    const t0 = Date.now();
    const reservation = e.kv.lease === '0';
    const put = this.client.put(e.key).value(text);
    let leaseId: string | null = null;
    let expiration = t0 + this.ttlSeconds * 1000;
    if (!reservation) {
      const g = await this.client.leaseClient.leaseGrant({ TTL: this.ttlSeconds, ID: 0 });
      leaseId = g.ID;
      expiration = t0 + Number(g.TTL) * 1000;
      put.lease(g.ID);
    }
    const r = await this.client.if(e.key, 'Mod', '==', e.kv.mod_revision).then(put).commit();
    if (!r.succeeded) {
      if (leaseId !== null) await this.client.leaseClient.leaseRevoke({ ID: leaseId }).catch(() => undefined);
      return null;
    }
    return { subnet: e.subnet, attrs: { ...attrs }, expiration };
  }

  /**
   * Runs `fn`, retrying transport failures for up to connectTimeoutMs
   * (etcd starting up next to us, a leader election); then EETCD naming the
   * endpoints and the last error. WeftErrors pass through at once.
   */
  private async retrying<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.connectTimeoutMs;
    const backoff = new Backoff(100, 1000);
    for (;;) {
      try {
        return await fn();
      } catch (e) {
        if (isWeftError(e)) throw e;
        // Closed (a stop during start-up): retrying would only keep the process alive.
        if (this.closed) throw new WeftError('ECLOSED', `cannot ${what}: the etcd store was closed`, { cause: e });
        const name = (e as Error | null)?.constructor?.name ?? '';
        const fatal = /Auth|Permission|Unauthenticated|RoleNotGranted|UserNotFound/.test(name);
        const delay = backoff.next();
        if (fatal || Date.now() + delay > deadline) {
          const hint = fatal
            ? 'check --etcd-username/--etcd-password and the role\'s permissions on the prefix'
            : `check that etcd runs and listens there${this.endpoints[0]?.startsWith('https') ? ', and the --etcd-cafile/certfile/keyfile' : ''}`;
          throw new WeftError(
            'EETCD',
            `cannot ${what}: etcd at ${this.endpoints.join(',')} (--etcd-endpoints) ${fatal ? 'refused us' : `did not answer within ${Math.round(this.connectTimeoutMs / 1000)} s`}: ${msgOf(e)}; ${hint}`,
            { cause: e },
          );
        }
        await sleep(delay);
      }
    }
  }
}
