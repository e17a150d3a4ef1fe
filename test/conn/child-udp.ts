/**
 * Runs inside a test-created namespace (see udp.test.ts):
 * `node child-udp.js <scenario>`; prints one JSON line.
 */
import { WeftError } from '../../src/errors.js';
import { native } from '../../src/native/index.js';
import { openUdp } from '../../src/conn/udp.js';

const LO = 0x7f000001;

function errInfo(f: () => unknown): Record<string, unknown> {
  try {
    f();
    return { threw: false };
  } catch (e) {
    const x = e as Error & { code?: string; cause?: { code?: string } };
    return { threw: true, weft: e instanceof WeftError, code: x.code, causeCode: x.cause?.code,
      message: x.message };
  }
}

const scenario = process.argv[2];
const out: Record<string, unknown> = {};
if (scenario === 'bind') {
  const a = openUdp({ addr: LO, port: 40000, reusePort: true });
  const b = openUdp({ addr: LO, port: 40000, reusePort: true, rcvBuf: 1 << 20, sndBuf: 1 << 20 });
  out.ports = [native.udpLocalPort(a), native.udpLocalPort(b)];
  out.bufs = native.sockBufSizes(b);
  const c = openUdp({ addr: 0, port: 40001, reusePort: false });
  out.inUse = errInfo(() => openUdp({ addr: LO, port: 40001, reusePort: false }));
  out.inUseAny = errInfo(() => openUdp({ addr: 0, port: 40001, reusePort: false }));
  out.notLocal = errInfo(() => openUdp({ addr: 0x0a010203, port: 40002, reusePort: false }));
  out.badPort = errInfo(() => openUdp({ addr: 0, port: 70000, reusePort: false }));
  const e = openUdp({ addr: 0, port: 0, reusePort: false });
  out.ephemeral = native.udpLocalPort(e);
  for (const fd of [a, b, c, e]) native.close(fd);
} else if (scenario === 'eacces') {
  out.err = errInfo(() => openUdp({ addr: 0, port: 80, reusePort: false }));
} else {
  console.error(`unknown scenario ${scenario}`);
  process.exit(2);
}
console.log(JSON.stringify(out));
