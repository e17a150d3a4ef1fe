/**
 * The daemon's local control socket: HTTP over a unix socket (root-only by
 * file mode), serving the status snapshot to `weft status`, the demo and
 * the tests. Test hooks (crash a worker) exist only with --test-hooks.
 */
import { createServer, request, type Server } from 'node:http';
import { mkdir, unlink } from 'node:fs/promises';
import { chmodSync } from 'node:fs';
import { dirname } from 'node:path';
import { WeftError } from '../errors.js';

export interface ControlHandlers {
  status(): unknown;
  crashWorker: ((i: number) => boolean) | null;
}

export async function startControlServer(path: string, h: ControlHandlers): Promise<Server> {
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  await unlink(path).catch(() => undefined);
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
        const i = Number(url.searchParams.get('worker') ?? '0');
        send(h.crashWorker(i) ? 200 : 404, { worker: i });
      } else {
        send(404, { error: `no such endpoint ${req.method} ${url.pathname}` });
      }
    } catch (e) {
      send(500, { error: e instanceof Error ? e.message : String(e) });
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
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
