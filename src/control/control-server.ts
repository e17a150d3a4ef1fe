/**
 * The daemon's local control socket: HTTP over a unix socket (root-only by
 * file mode), serving the status snapshot to `weft status`, the demo and
 * the tests. Test hooks (crash a worker) exist only with --test-hooks.
 */
import { createServer, request, type Server } from 'node:http';
import { lstat, mkdir, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { WeftError } from '../errors.js';

export interface ControlHandlers {
  status(): unknown;
  crashWorker: ((i: number) => boolean) | null;
}

/**
 * Listens on `path`, in a directory made 0700 when weft creates it. Only a
 * socket left there is replaced (the instance lock says its daemon is
 * gone); any other file is refused, so a mistyped --control-socket deletes
 * nothing.
 */
export async function startControlServer(path: string, h: ControlHandlers): Promise<Server> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const st = await lstat(path).catch(() => null);
  if (st !== null && !st.isSocket()) {
    throw new WeftError('EEXIST', `--control-socket ${path} exists and is not a socket: weft does not delete it; `
      + 'remove it yourself or choose another path');
  }
  if (st !== null) await unlink(path);
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://weft');
    const send = (code: number, body: unknown): void => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify(body)}\n`);
    };
    try {
      if (req.method === 'GET' && url.pathname === '/status') {
        send(200, h.status());
      } else if (req.method === 'POST' && url.pathname === '/test/crash-worker' && h.crashWorker) {
        const arg = url.searchParams.get('worker') ?? '0';
        if (!/^\d{1,3}$/.test(arg)) send(400, { error: `worker must be a worker index such as 0, got ${JSON.stringify(arg)}` });
        else send(h.crashWorker(Number(arg)) ? 200 : 404, { worker: Number(arg) });
      } else {
        send(404, { error: `no such endpoint ${req.method} ${url.pathname}` });
      }
    } catch (e) {
      send(500, { error: e instanceof Error ? e.message : String(e) });
    }
  });
  // The socket is made 0600 by bind itself (listen binds synchronously), never readable by others for a moment.
  const umask = process.umask(0o177);
  let listening: Promise<void>;
  try {
    listening = new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
  } finally {
    process.umask(umask);
  }
  await listening;
  return server;
}

/** Client side: one request to a running daemon's control socket. */
export function controlRequest(path: string, method: 'GET' | 'POST', url: string, timeoutMs = 3000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: path, method, path: url, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => {
        try {
          const v: unknown = JSON.parse(body);
          if ((res.statusCode ?? 500) >= 400) {
            reject(new WeftError('ECONTROL', `weft daemon answered ${res.statusCode}: ${body.trim()}`));
          } else {
            resolve(v);
          }
        } catch {
          reject(new WeftError('ECONTROL', `weft daemon sent an unreadable answer: ${body.slice(0, 200)}`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (e: NodeJS.ErrnoException) => {
      const hint = e.code === 'ENOENT' || e.code === 'ECONNREFUSED'
        ? ' — is the daemon running? (pass --control-socket if it uses another path)' : '';
      reject(new WeftError('ECONTROL', `cannot reach the weft daemon at ${path}: ${e.message}${hint}`));
    });
    req.end();
  });
}
