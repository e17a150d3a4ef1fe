import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type UnderlayOptions,
  findUnderlay,
  parseDefaultRouteJson,
  parseIpAddrJson,
  parseRouteGetJson,
  selectUnderlay,
} from '../../src/config/underlay.js';
import { isWeftError } from '../../src/errors.js';
import { formatIpv4 } from '../../src/wire/ipv4-addr.js';

// Captured with `ip -j addr show` (iproute2 6.1) on a k8s node, trimmed of
// fields weft ignores but otherwise as printed. enp0s8 carries two IPv4
// addresses; docker0 has none (so `ip -4` would not list it); eth9 has only
// a link-local one.
const ADDR_JSON = `[
{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"qdisc":"noqueue","operstate":"UNKNOWN","group":"default","txqlen":1000,"link_type":"loopback","address":"00:00:00:00:00:00","broadcast":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host","label":"lo","valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6","local":"::1","prefixlen":128,"scope":"host","valid_life_time":4294967295,"preferred_life_time":4294967295}]},
{"ifindex":2,"ifname":"enp0s3","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"qdisc":"fq_codel","operstate":"UP","group":"default","txqlen":1000,"link_type":"ether","address":"08:00:27:8a:1b:2c","broadcast":"ff:ff:ff:ff:ff:ff","addr_info":[{"family":"inet","local":"10.0.2.15","prefixlen":24,"broadcast":"10.0.2.255","scope":"global","dynamic":true,"noprefixroute":true,"label":"enp0s3","valid_life_time":85980,"preferred_life_time":85980},{"family":"inet6","local":"fe80::a00:27ff:fe8a:1b2c","prefixlen":64,"scope":"link","valid_life_time":4294967295,"preferred_life_time":4294967295}]},
{"ifindex":3,"ifname":"enp0s8","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":9000,"qdisc":"fq_codel","operstate":"UP","group":"default","txqlen":1000,"link_type":"ether","address":"08:00:27:11:22:33","broadcast":"ff:ff:ff:ff:ff:ff","addr_info":[{"family":"inet","local":"192.168.56.11","prefixlen":24,"broadcast":"192.168.56.255","scope":"global","label":"enp0s8","valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet","local":"192.168.57.11","prefixlen":24,"scope":"global","secondary":true,"label":"enp0s8","valid_life_time":4294967295,"preferred_life_time":4294967295}]},
{"ifindex":4,"ifname":"docker0","flags":["NO-CARRIER","BROADCAST","MULTICAST","UP"],"mtu":1500,"qdisc":"noqueue","operstate":"DOWN","group":"default","link_type":"ether","address":"02:42:5e:6f:70:81","broadcast":"ff:ff:ff:ff:ff:ff","addr_info":[]},
{"ifindex":5,"ifname":"eth9","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1400,"qdisc":"fq_codel","operstate":"UP","group":"default","txqlen":1000,"link_type":"ether","address":"02:00:00:00:00:09","broadcast":"ff:ff:ff:ff:ff:ff","addr_info":[{"family":"inet","local":"169.254.3.4","prefixlen":16,"scope":"link","label":"eth9","valid_life_time":4294967295,"preferred_life_time":4294967295}]},
{},
{"ifindex":7,"ifname":"flannel.1","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1450,"qdisc":"noqueue","operstate":"UNKNOWN","group":"default","link_type":"ether","address":"c6:d2:32:6f:8f:44","broadcast":"ff:ff:ff:ff:ff:ff","addr_info":[{"family":"inet","local":"10.244.1.0","prefixlen":32,"scope":"global","label":"flannel.1","valid_life_time":4294967295,"preferred_life_time":4294967295}]}
]`;

// `ip -j -4 route show default` with two defaults (DHCP at metric 100 and a
// backup at 200), listed backup-first to check the metric decides.
const DEFAULT_JSON = '[{"dst":"default","gateway":"192.168.56.1","dev":"enp0s8","protocol":"static","metric":200,"flags":[]},{"dst":"default","gateway":"10.0.2.2","dev":"enp0s3","protocol":"dhcp","prefsrc":"10.0.2.15","metric":100,"flags":[]}]';
// `ip -j -4 route get 192.168.57.99`
const ROUTE_GET_JSON = '[{"dst":"192.168.57.99","dev":"enp0s8","prefsrc":"192.168.57.11","flags":[],"uid":0,"cache":[]}]';

const LINKS = parseIpAddrJson(JSON.parse(ADDR_JSON));
const DEFAULT_DEV = parseDefaultRouteJson(JSON.parse(DEFAULT_JSON));
const NONE: UnderlayOptions = { iface: [], ifaceRegex: [], ifaceCanReach: '', publicIp: '' };

function pick(opts: Partial<UnderlayOptions>, defaultDev: string | null = DEFAULT_DEV): { name: string; index: number; addr: string; publicIp: string; mtu: number } {
  const u = selectUnderlay({ ...NONE, ...opts }, LINKS, { defaultDev, canReach: parseRouteGetJson(JSON.parse(ROUTE_GET_JSON)) });
  return { name: u.name, index: u.index, addr: formatIpv4(u.addr), publicIp: formatIpv4(u.publicIp), mtu: u.mtu };
}

function fails(opts: Partial<UnderlayOptions>, defaultDev: string | null, ...parts: string[]): void {
  assert.throws(
    () => pick(opts, defaultDev),
    (e: unknown) => {
      assert.ok(isWeftError(e, 'EIFACE'), `expected EIFACE, got ${String(e)}`);
      for (const p of parts) assert.ok(e.message.includes(p), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(p)}`);
      return true;
    },
  );
}

test('underlay: parsing ip -j output', () => {
  assert.deepEqual(LINKS.map((l) => l.name), ['lo', 'enp0s3', 'enp0s8', 'docker0', 'eth9', 'flannel.1']);
  assert.deepEqual(LINKS[2], { name: 'enp0s8', index: 3, mtu: 9000, addrs: [0xc0a8380b, 0xc0a8390b] });
  assert.equal(DEFAULT_DEV, 'enp0s3');
  assert.equal(parseDefaultRouteJson([]), null);
  assert.equal(parseDefaultRouteJson(JSON.parse('[{"dst":"default","metric":10,"nexthops":[{"gateway":"10.0.0.1","dev":"bond0","weight":1}],"flags":[]}]')), 'bond0');
  assert.equal(parseDefaultRouteJson(JSON.parse('[{"type":"unreachable","dst":"default","metric":1,"flags":[]},{"dst":"default","dev":"eth0","flags":[]}]')), 'eth0');
  assert.deepEqual(parseRouteGetJson(JSON.parse(ROUTE_GET_JSON)), { dev: 'enp0s8', src: 0xc0a8390b });
  assert.equal(parseRouteGetJson([]), null);
  assert.throws(() => parseIpAddrJson({}), (e: unknown) => isWeftError(e, 'EIFACE'));
});

test('underlay: selection', () => {
  const rows: [Partial<UnderlayOptions>, ReturnType<typeof pick>][] = [
    // Default route (lowest metric).
    [{}, { name: 'enp0s3', index: 2, addr: '10.0.2.15', publicIp: '10.0.2.15', mtu: 1500 }],
    // By name: the first global address.
    [{ iface: ['enp0s8'] }, { name: 'enp0s8', index: 3, addr: '192.168.56.11', publicIp: '192.168.56.11', mtu: 9000 }],
    // By IP: exactly that address, even a secondary one.
    [{ iface: ['192.168.57.11'] }, { name: 'enp0s8', index: 3, addr: '192.168.57.11', publicIp: '192.168.57.11', mtu: 9000 }],
    // First that exists wins.
    [{ iface: ['eth0', '10.9.9.9', 'enp0s8', 'enp0s3'] }, { name: 'enp0s8', index: 3, addr: '192.168.56.11', publicIp: '192.168.56.11', mtu: 9000 }],
    // Link-local only is still usable (flannel falls back to it).
    [{ iface: ['eth9'] }, { name: 'eth9', index: 5, addr: '169.254.3.4', publicIp: '169.254.3.4', mtu: 1400 }],
    // Regex against addresses first (all interfaces), then names.
    [{ ifaceRegex: ['^192\\.168\\.57\\.'] }, { name: 'enp0s8', index: 3, addr: '192.168.57.11', publicIp: '192.168.57.11', mtu: 9000 }],
    [{ ifaceRegex: ['^enp0s[0-9]$'] }, { name: 'enp0s3', index: 2, addr: '10.0.2.15', publicIp: '10.0.2.15', mtu: 1500 }],
    [{ ifaceRegex: ['nomatch', 'enp0s8'] }, { name: 'enp0s8', index: 3, addr: '192.168.56.11', publicIp: '192.168.56.11', mtu: 9000 }],
    // --iface entries that miss fall through to --iface-regex.
    [{ iface: ['eth0'], ifaceRegex: ['^enp0s8$'] }, { name: 'enp0s8', index: 3, addr: '192.168.56.11', publicIp: '192.168.56.11', mtu: 9000 }],
    // --iface-can-reach uses `ip route get`'s device and source.
    [{ ifaceCanReach: '192.168.57.99' }, { name: 'enp0s8', index: 3, addr: '192.168.57.11', publicIp: '192.168.57.11', mtu: 9000 }],
    // --public-ip only changes the published address...
    [{ iface: ['enp0s8'], publicIp: '203.0.113.7' }, { name: 'enp0s8', index: 3, addr: '192.168.56.11', publicIp: '203.0.113.7', mtu: 9000 }],
    // ...but without --iface it picks the interface that holds it (flanneld)...
    [{ publicIp: '192.168.56.11' }, { name: 'enp0s8', index: 3, addr: '192.168.56.11', publicIp: '192.168.56.11', mtu: 9000 }],
    // ...and a NAT address held by no interface falls back to the default route.
    [{ publicIp: '203.0.113.7' }, { name: 'enp0s3', index: 2, addr: '10.0.2.15', publicIp: '203.0.113.7', mtu: 1500 }],
  ];
  for (const [opts, want] of rows) assert.deepEqual(pick(opts), want, JSON.stringify(opts));
});

test('underlay: errors', () => {
  fails({ iface: ['eth0'] }, DEFAULT_DEV, 'no interface named eth0', 'available interfaces:', 'enp0s3[10.0.2.15]', 'docker0[]');
  fails({ iface: ['10.9.9.9'] }, DEFAULT_DEV, 'no interface holds 10.9.9.9');
  fails({ ifaceRegex: ['^wlan'] }, DEFAULT_DEV, 'pattern ^wlan matches no interface');
  fails({ ifaceRegex: ['(['] }, DEFAULT_DEV, '--iface-regex "(["', 'not a valid regular expression');
  fails({ iface: ['docker0'] }, DEFAULT_DEV, 'failed to find IPv4 address for interface docker0');
  // Loopback addresses do not count (Go's IsGlobalUnicast), as in flannel.
  fails({ iface: ['lo'] }, DEFAULT_DEV, 'failed to find IPv4 address for interface lo');
  fails({}, null, 'no default IPv4 route', '--iface', '--public-ip');
  fails({ publicIp: '203.0.113.7' }, null, 'no default IPv4 route');
  fails({}, 'wg0', 'default route uses interface wg0');
  fails({ iface: ['enp0s8'], publicIp: '203.0.113' }, DEFAULT_DEV, 'invalid public IP address', '"203.0.113"');
  fails({ iface: ['enp0s8'], publicIp: 'fd00::1' }, DEFAULT_DEV, 'invalid public IP address');
});

test('underlay: findUnderlay runs ip -j and selects', async () => {
  const calls: string[] = [];
  const run = async (args: string[]): Promise<string> => {
    calls.push(args.join(' '));
    if (args.includes('addr')) return ADDR_JSON;
    if (args.includes('get')) return ROUTE_GET_JSON;
    return DEFAULT_JSON;
  };
  const u = await findUnderlay({ ...NONE, iface: ['enp0s3'] }, run);
  assert.equal(u.name, 'enp0s3');
  assert.deepEqual(calls, ['-j addr show', '-j -4 route show default']);
  calls.length = 0;
  const v = await findUnderlay({ ...NONE, ifaceCanReach: '192.168.57.99' }, run);
  assert.equal(v.name, 'enp0s8');
  assert.deepEqual(calls, ['-j addr show', '-j -4 route show default', '-j -4 route get 192.168.57.99']);
  // No default route: ip prints nothing at all.
  await assert.rejects(
    findUnderlay(NONE, async (args) => (args.includes('addr') ? ADDR_JSON : '')),
    (e: unknown) => isWeftError(e, 'EIFACE') && e.message.includes('--iface'),
  );
  await assert.rejects(findUnderlay({ ...NONE, ifaceCanReach: 'x' }, run), (e: unknown) => isWeftError(e, 'EIFACE'));
});

test('underlay: findUnderlay against this host', async () => {
  // The real `ip`; the machine running the tests has a default route or not,
  // either way the answer is an Underlay or a WeftError EIFACE.
  try {
    const u = await findUnderlay(NONE);
    assert.ok(u.mtu > 0 && u.index > 0 && u.addr > 0);
  } catch (e) {
    assert.ok(isWeftError(e, 'EIFACE'), String(e));
  }
});
