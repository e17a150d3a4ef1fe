/**
 * An in-process stand-in for the part of kube-apiserver that weft's
 * Kubernetes lease store uses, with the real API's semantics where weft
 * depends on them:
 *
 * - one cluster-wide resourceVersion counter, bumped by every write and
 *   stamped on the object (metadata.resourceVersion) and on lists;
 * - GET /api/v1/nodes (NodeList), GET /api/v1/nodes/<name>;
 * - GET /api/v1/nodes?watch=true&resourceVersion=N: a chunked stream of
 *   JSON lines {type, object}. N = "" or "0" starts with synthetic ADDED
 *   events for every node; otherwise every change after N is replayed from
 *   a bounded history, and when N is older than that window the stream is
 *   one ERROR event carrying a Status with code 410 ("too old resource
 *   version"), then closes — exactly how the real server says "Gone";
 * - BOOKMARK events on request (allowWatchBookmarks=true);
 * - PATCH /api/v1/nodes/<name>/status with content type
 *   application/strategic-merge-patch+json only (415 otherwise), merging
 *   metadata.annotations/labels as maps (null deletes) and
 *   status.conditions as a list keyed by `type`, as the Node schema's
 *   patchMergeKey says; spec is ignored on the status subresource;
 * - GET /api/v1/namespaces/<ns>/pods/<name>;
 * - bearer-token auth (401 without it), Status objects for errors.
 *
 * Tests drive the cluster directly (addNode/modifyNode/deleteNode,
 * compact, bookmark, dropWatches) and inspect the recorded requests and
 * patches.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

export interface FakeNodeInit {
  name: string;
  podCIDR?: string;
  podCIDRs?: string[];
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
}

export interface RecordedRequest {
  method: string;
  url: string;
  contentType: string | undefined;
  body: string;
}

interface HistoryEntry {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: JsonObject;
}

interface Watcher {
  res: ServerResponse;
  /** Only events newer than this are sent. */
  fromRv: number;
  bookmarks: boolean;
  stalled?: boolean;
}

const clone = <T>(v: T): T => structuredClone(v);

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export class FakeKubeApi {
  readonly token: string;
  private server: Server | null = null;
  private rv = 1;
  private readonly nodes = new Map<string, JsonObject>();
  private readonly pods = new Map<string, JsonObject>();
  private history: HistoryEntry[] = [];
  /** A watch from a resourceVersion below this gets 410 Gone. */
  private compactedRv = 0;
  private readonly watchers = new Set<Watcher>();
  /** Every request, in arrival order. */
  readonly requests: RecordedRequest[] = [];
  /** Bodies of node status PATCH requests as sent (raw text), with the node name. */
  readonly patches: { name: string; contentType: string | undefined; body: string }[] = [];
  /** How many watches were answered with 410 Gone. */
  goneCount = 0;
  /** When set, the next N list requests fail with this HTTP status. */
  failLists = 0;
  failListStatus = 500;

  constructor(opts: { token?: string; historyLimit?: number } = {}) {
    this.token = opts.token ?? 'fake-token-0123456789';
    this.historyLimit = opts.historyLimit ?? 1000;
  }

  private readonly historyLimit: number;

  /**
   * Listens on 127.0.0.1 (a free port), or on the unix socket `path`:
   * daemons in network namespaces reach a path, not our loopback.
   */
  async start(opts: { path?: string } = {}): Promise<void> {
    const server = createServer((req, res) => void this.handle(req, res));
    this.server = server;
    await new Promise<void>((resolve) => {
      if (opts.path !== undefined) server.listen(opts.path, resolve);
      else server.listen(0, '127.0.0.1', resolve);
    });
  }

  get url(): string {
    if (this.server === null) throw new Error('fake kube api not started');
    const a = this.server.address();
    if (typeof a === 'string') throw new Error(`fake kube api listens on ${a}, which has no URL; pass writeKubeconfig a server`);
    return `http://127.0.0.1:${(a as AddressInfo).port}`;
  }

  get resourceVersion(): number {
    return this.rv;
  }

  get watchCount(): number {
    return this.watchers.size;
  }

  async close(): Promise<void> {
    for (const w of this.watchers) w.res.destroy();
    this.watchers.clear();
    const s = this.server;
    this.server = null;
    if (s === null) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  /** A kubeconfig (JSON is YAML) pointing at `server` (default: this server's URL) with token auth, no TLS. */
  writeKubeconfig(dir: string, name = 'kubeconfig', server = this.url): string {
    const path = join(dir, name);
    const cfg = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'fake', cluster: { server } }],
      users: [{ name: 'weft', user: { token: this.token } }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'weft' } }],
      'current-context': 'fake',
    };
    writeFileSync(path, JSON.stringify(cfg, null, 2));
    return path;
  }

  // ---- cluster state, driven by tests ------------------------------------

  addNode(init: FakeNodeInit): JsonObject {
    if (this.nodes.has(init.name)) throw new Error(`node ${init.name} exists`);
    const spec: JsonObject = {};
    if (init.podCIDR !== undefined) spec.podCIDR = init.podCIDR;
    if (init.podCIDRs !== undefined) spec.podCIDRs = [...init.podCIDRs];
    else if (init.podCIDR !== undefined) spec.podCIDRs = [init.podCIDR];
    const node: JsonObject = {
      kind: 'Node',
      apiVersion: 'v1',
      metadata: {
        name: init.name,
        uid: `uid-${init.name}`,
        resourceVersion: '',
        creationTimestamp: '2024-01-01T00:00:00Z',
        // kubelet always sets some; weft must not lose them.
        annotations: { 'node.alpha.kubernetes.io/ttl': '0', ...(init.annotations ?? {}) },
        labels: { 'kubernetes.io/hostname': init.name, ...(init.labels ?? {}) },
      },
      spec,
      status: {
        conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status' }],
      },
    };
    this.nodes.set(init.name, node);
    this.emit('ADDED', node);
    return clone(node);
  }

  /** Changes a node in place (any field), like another client's update. */
  modifyNode(name: string, change: (node: JsonObject) => void): JsonObject {
    const node = this.nodes.get(name);
    if (node === undefined) throw new Error(`no node ${name}`);
    change(node);
    this.emit('MODIFIED', node);
    return clone(node);
  }

  setAnnotation(name: string, key: string, value: string | null): void {
    this.modifyNode(name, (n) => {
      const md = n.metadata as JsonObject;
      const ann = (md.annotations ?? {}) as JsonObject;
      if (value === null) delete ann[key];
      else ann[key] = value;
      md.annotations = ann;
    });
  }

  deleteNode(name: string): void {
    const node = this.nodes.get(name);
    if (node === undefined) throw new Error(`no node ${name}`);
    this.nodes.delete(name);
    this.emit('DELETED', node);
  }

  getNode(name: string): JsonObject | undefined {
    const n = this.nodes.get(name);
    return n === undefined ? undefined : clone(n);
  }

  addPod(namespace: string, name: string, nodeName: string | null): void {
    const spec: JsonObject = nodeName === null ? {} : { nodeName };
    this.pods.set(`${namespace}/${name}`, {
      kind: 'Pod',
      apiVersion: 'v1',
      metadata: { name, namespace, resourceVersion: String(++this.rv) },
      spec,
    });
  }

  /** Forgets the whole change history: every watch from an older resourceVersion gets 410 Gone. */
  compact(): void {
    this.history = [];
    this.compactedRv = this.rv;
  }

  /** Sends a BOOKMARK with the current resourceVersion to every watch that asked for them. */
  bookmark(): void {
    for (const w of this.watchers) {
      if (!w.bookmarks) continue;
      this.send(w, 'BOOKMARK', { kind: 'Node', apiVersion: 'v1', metadata: { resourceVersion: String(this.rv) } });
    }
  }

  /** Open watches stay connected but receive nothing more (a stuck watch). */
  stallWatches(): void {
    for (const w of this.watchers) w.stalled = true;
  }

  /** Ends every open watch stream cleanly (the server's watch timeout). */
  endWatches(): void {
    for (const w of this.watchers) w.res.end();
    this.watchers.clear();
  }

  /** Breaks every open watch connection (a network error). */
  dropWatches(): void {
    for (const w of this.watchers) w.res.destroy();
    this.watchers.clear();
  }

  /** Sends an ERROR 410 event on every open watch and ends it. */
  expireWatches(): void {
    for (const w of this.watchers) {
      this.goneCount++;
      this.send(w, 'ERROR', this.status(410, 'Expired', `too old resource version: ${w.fromRv} (${this.rv})`));
      w.res.end();
    }
    this.watchers.clear();
  }

  listCount(): number {
    return this.requests.filter((r) => r.method === 'GET' && /^\/api\/v1\/nodes(\?|$)/.test(r.url) && !/[?&]watch=(true|1)/.test(r.url)).length;
  }

  // ---- internals -----------------------------------------------------------

  private emit(type: HistoryEntry['type'], node: JsonObject): void {
    const rv = ++this.rv;
    (node.metadata as JsonObject).resourceVersion = String(rv);
    const object = clone(node);
    this.history.push({ rv, type, object });
    while (this.history.length > this.historyLimit) {
      const dropped = this.history.shift() as HistoryEntry;
      this.compactedRv = dropped.rv;
    }
    for (const w of this.watchers) if (rv > w.fromRv) this.send(w, type, object);
  }

  private send(w: Watcher, type: string, object: JsonObject): void {
    if (w.stalled === true || w.res.writableEnded || w.res.destroyed) return;
    w.res.write(`${JSON.stringify({ type, object })}\n`);
  }

  private status(code: number, reason: string, message: string): JsonObject {
    return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
  }

  private reply(res: ServerResponse, code: number, body: JsonObject): void {
    const text = JSON.stringify(body);
    res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  private fail(res: ServerResponse, code: number, reason: string, message: string): void {
    this.reply(res, code, this.status(code, reason, message));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', 'http://x');
    this.requests.push({ method, url: req.url ?? '/', contentType: req.headers['content-type'], body });

    if (req.headers.authorization !== `Bearer ${this.token}`) {
      this.fail(res, 401, 'Unauthorized', 'Unauthorized');
      return;
    }
    const path = url.pathname;
    let m: RegExpExecArray | null;
    if (method === 'GET' && path === '/api/v1/nodes') {
      const watch = url.searchParams.get('watch');
      if (watch === 'true' || watch === '1') this.watch(url, res);
      else this.list(res);
      return;
    }
    if ((m = /^\/api\/v1\/nodes\/([^/]+)$/.exec(path)) !== null && method === 'GET') {
      const node = this.nodes.get(decodeURIComponent(m[1] as string));
      if (node === undefined) this.fail(res, 404, 'NotFound', `nodes "${decodeURIComponent(m[1] as string)}" not found`);
      else this.reply(res, 200, node);
      return;
    }
    if ((m = /^\/api\/v1\/nodes\/([^/]+)\/status$/.exec(path)) !== null && method === 'PATCH') {
      this.patchStatus(decodeURIComponent(m[1] as string), req.headers['content-type'], body, res);
      return;
    }
    if ((m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)$/.exec(path)) !== null && method === 'GET') {
      const ns = decodeURIComponent(m[1] as string);
      const name = decodeURIComponent(m[2] as string);
      const pod = this.pods.get(`${ns}/${name}`);
      if (pod === undefined) this.fail(res, 404, 'NotFound', `pods "${name}" not found`);
      else this.reply(res, 200, pod);
      return;
    }
    this.fail(res, 404, 'NotFound', `the server could not find the requested resource (${method} ${path})`);
  }

  private list(res: ServerResponse): void {
    if (this.failLists > 0) {
      this.failLists--;
      this.fail(res, this.failListStatus, 'InternalError', 'list failed (injected)');
      return;
    }
    const items = [...this.nodes.values()].sort((a, b) => String((a.metadata as JsonObject).name).localeCompare(String((b.metadata as JsonObject).name)));
    this.reply(res, 200, { kind: 'NodeList', apiVersion: 'v1', metadata: { resourceVersion: String(this.rv) }, items });
  }

  private watch(url: URL, res: ServerResponse): void {
    const rvText = url.searchParams.get('resourceVersion') ?? '';
    const bookmarks = url.searchParams.get('allowWatchBookmarks') === 'true';
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    const w: Watcher = { res, fromRv: this.rv, bookmarks };
    if (rvText === '' || rvText === '0') {
      // "Any" resourceVersion: the current state as synthetic ADDED events.
      for (const n of this.nodes.values()) this.send(w, 'ADDED', n);
    } else {
      const from = Number(rvText);
      if (!Number.isInteger(from) || from < 0) {
        this.send(w, 'ERROR', this.status(400, 'BadRequest', `invalid resourceVersion ${rvText}`));
        res.end();
        return;
      }
      if (from < this.compactedRv) {
        this.goneCount++;
        this.send(w, 'ERROR', this.status(410, 'Expired', `too old resource version: ${from} (${this.rv})`));
        res.end();
        return;
      }
      for (const h of this.history) if (h.rv > from) this.send(w, h.type, h.object);
      w.fromRv = Math.max(from, this.rv);
    }
    this.watchers.add(w);
    res.on('close', () => this.watchers.delete(w));
  }

  private patchStatus(name: string, contentType: string | undefined, body: string, res: ServerResponse): void {
    this.patches.push({ name, contentType, body });
    const ct = (contentType ?? '').split(';')[0]?.trim();
    if (ct !== 'application/strategic-merge-patch+json') {
      this.fail(res, 415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got ${contentType ?? 'none'})`);
      return;
    }
    const node = this.nodes.get(name);
    if (node === undefined) {
      this.fail(res, 404, 'NotFound', `nodes "${name}" not found`);
      return;
    }
    let patch: unknown;
    try {
      patch = JSON.parse(body);
    } catch {
      this.fail(res, 400, 'BadRequest', 'invalid JSON patch');
      return;
    }
    if (!isObject(patch)) {
      this.fail(res, 400, 'BadRequest', 'patch is not an object');
      return;
    }
    const md = node.metadata as JsonObject;
    if (isObject(patch.metadata)) {
      for (const key of ['annotations', 'labels']) {
        const p = patch.metadata[key];
        if (!isObject(p)) continue;
        const cur = isObject(md[key]) ? (md[key] as JsonObject) : {};
        for (const [k, v] of Object.entries(p)) {
          if (v === null) delete cur[k];
          else cur[k] = v;
        }
        md[key] = cur;
      }
    }
    if (isObject(patch.status)) {
      const status = (isObject(node.status) ? node.status : {}) as JsonObject;
      for (const [k, v] of Object.entries(patch.status)) {
        if (k === 'conditions' && Array.isArray(v)) {
          // patchMergeKey "type": merge element-wise, append new types.
          const conds = Array.isArray(status.conditions) ? (status.conditions as JsonObject[]) : [];
          for (const c of v) {
            if (!isObject(c)) continue;
            const old = conds.find((o) => o.type === c.type);
            if (old === undefined) conds.push(clone(c));
            else Object.assign(old, clone(c));
          }
          status.conditions = conds;
        } else {
          status[k] = clone(v);
        }
      }
      node.status = status;
    }
    this.emit('MODIFIED', node);
    this.reply(res, 200, node);
  }
}
