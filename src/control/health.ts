/**
 * --healthz-ip / --healthz-port: flanneld's liveness endpoint plus what
 * weft adds. flanneld serves only /healthz (200 "flanneld is running" as
 * soon as the process runs); weft keeps that meaning while its data plane
 * lives (503 once no worker has forwarded for a while, so the kubelet
 * restarts the pod), adds /readyz (200 while the node forwards pod
 * traffic, 503 with the reason otherwise) and /metrics (Prometheus text).
 * Port 0 turns the server off, as in flanneld.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { WeftError } from '../errors.js';

export interface HealthServerOptions {
  /** --healthz-ip (flanneld's default 0.0.0.0). */
  host: string;
  /** --healthz-port; 0 = off. */
  port: number;
  /** Why the node does not forward pod traffic now (/readyz 503), or null. */
  notReady: () => string | null;
  /** Why the daemon should be restarted (/healthz 503), or null. */
  notLive: () => string | null;
  /** The Prometheus exposition text, rendered on each scrape. */
  metrics: () => Promise<string>;
  /** Content type of the metrics text; default prom-client's text format 0.0.4. */
  metricsContentType?: string;
}

export interface HealthServer {
  /** The bound port (useful when the caller passed an explicit port and wants it back). */
  readonly port: number;
  readonly host: string;
  close(): Promise<void>;
}

const TEXT = 'text/plain; charset=utf-8';

/** Starts the server, or resolves null when `port` is 0 (off). */
export async function startHealthServer(o: HealthServerOptions): Promise<HealthServer | null> {
  if (o.port === 0) return null;
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) {
    throw new WeftError('EUSAGE', `--healthz-port ${o.port}: give a TCP port 1..65535, or 0 to disable`);
  }
  const contentType = o.metricsContentType ?? Registry.PROMETHEUS_CONTENT_TYPE;
  const server = createServer((req, res) => { handle(o, contentType, req, res); });
  // A scraper's keep-alive connection must not hold the daemon's stop.
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      reject(listenError(e, o.host, o.port));
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ host: o.host, port: o.port, exclusive: true });
  });
  // After start an error is a broken socket: keep serving what we can.
  server.on('error', () => {});
  const addr = server.address() as AddressInfo;
  return { port: addr.port, host: addr.address, close: () => closeServer(server) };
}

function listenError(e: NodeJS.ErrnoException, host: string, port: number): WeftError {
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  if (e.code === 'EADDRINUSE') {
    return new WeftError('EADDRINUSE', `healthz server: ${where} is already in use; pick a free port with `
      + `--healthz-port (or 0 to disable it), or stop the process that holds port ${port}`, { cause: e });
  }
  if (e.code === 'EADDRNOTAVAIL') {
    return new WeftError('EADDRNOTAVAIL', `healthz server: ${host} is not an address of this host; set --healthz-ip `
      + 'to one of its addresses or to 0.0.0.0', { cause: e });
  }
  if (e.code === 'EACCES') {
    return new WeftError('EACCES', `healthz server: no permission to listen on ${where}; use a --healthz-port above 1023 `
      + 'or run with CAP_NET_BIND_SERVICE', { cause: e });
  }
  return new WeftError(e.code ?? 'EHEALTHZ', `healthz server on ${where}: ${e.message}`, { cause: e });
}

function send(res: ServerResponse, status: number, type: string, body: string, head: boolean): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(head ? undefined : body);
}

function handle(o: HealthServerOptions, contentType: string, req: IncomingMessage, res: ServerResponse): void {
  const path = (req.url ?? '/').split('?')[0];
  const head = req.method === 'HEAD';
  if (req.method !== 'GET' && !head) {
    res.setHeader('allow', 'GET, HEAD');
    send(res, 405, TEXT, 'method not allowed\n', false);
    return;
  }
  switch (path) {
    case '/healthz':
    case '/readyz': {
      const why = path === '/healthz' ? o.notLive() : o.notReady();
      if (why === null) send(res, 200, TEXT, 'ok\n', head);
      else send(res, 503, TEXT, `${path === '/healthz' ? 'unhealthy' : 'not ready'}: ${why}\n`, head);
      return;
    }
    case '/metrics':
      o.metrics().then((text) => send(res, 200, contentType, text, head), (e: unknown) => {
        send(res, 500, TEXT, `metrics unavailable: ${e instanceof Error ? e.message : String(e)}\n`, head);
      });
      return;
    default:
      send(res, 404, TEXT, 'not found: try /healthz, /readyz or /metrics\n', head);
  }
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
