import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DropReason, DROP_REASON_COUNT, DROP_REASON_HELP, DROP_REASON_NAMES } from '../../src/wire/drop-reason.js';
import * as C from '../../src/wire/constants.js';

test('drop reasons are dense 0..COUNT-1 with a name and a help line each', () => {
  const entries = Object.entries(DropReason);
  assert.equal(DROP_REASON_COUNT, Math.max(...entries.map(([, v]) => v)) + 1);
  assert.equal(entries.length, DROP_REASON_COUNT);
  assert.deepEqual(entries.map(([, v]) => v).sort((a, b) => a - b), [...Array(DROP_REASON_COUNT).keys()]);
  assert.equal(DROP_REASON_NAMES.length, DROP_REASON_COUNT);
  assert.equal(DROP_REASON_HELP.length, DROP_REASON_COUNT);
  for (const [key, v] of entries) {
    assert.equal(DROP_REASON_NAMES[v], key.toLowerCase());
    assert.match(DROP_REASON_NAMES[v]!, /^[a-z][a-z0-9_]*$/); // Prometheus label value
    assert.ok(DROP_REASON_HELP[v]!.length > 0 && !DROP_REASON_HELP[v]!.includes('\n'));
  }
});

test('wire values the data path depends on', () => {
  assert.equal(DropReason.NONE, 0);
  assert.equal(DropReason.NO_ROUTE, 7);
  assert.equal(DropReason.FRAGMENT, 16);
  assert.equal(DROP_REASON_NAMES[DropReason.NO_ROUTE], 'no_route');
  assert.equal(C.FLANNEL_UDP_PORT, 8285);
  assert.equal(C.VXLAN_PORT_LINUX, 8472);
  assert.equal(C.VXLAN_PORT_IANA, 4789);
  assert.equal(C.FLANNEL_UDP_OVERHEAD, 28);
  assert.equal(C.ICMP_ERROR_MAX_LEN, 576);
  assert.deepEqual(
    [C.IPPROTO_ICMP, C.IPPROTO_TCP, C.IPPROTO_UDP, C.IPV4_HEADER_MIN, C.UDP_HEADER_LEN, C.ICMP_HEADER_LEN],
    [1, 6, 17, 20, 8, 8],
  );
  assert.deepEqual(
    [C.ICMP_ECHO_REPLY, C.ICMP_DEST_UNREACH, C.ICMP_ECHO_REQUEST, C.ICMP_TIME_EXCEEDED],
    [0, 3, 8, 11],
  );
  assert.deepEqual([C.ICMP_NET_UNREACH, C.ICMP_FRAG_NEEDED, C.ICMP_EXC_TTL], [0, 4, 0]);
});
