/**
 * flanneld v0.28.9's whole flag set (main.go: its own flags plus the three
 * it copies from klog), with Go's flag type and default. The reference
 * the flag tests hold weft's table to.
 */
export interface FlanneldFlag {
  name: string;
  /** string, bool, int; `list` for flagSlice (repeatable); klog's Level is an int. */
  type: 'string' | 'bool' | 'int' | 'list';
  default: string | boolean | number | readonly string[];
  /** A value flanneld accepts, to show weft takes it too. */
  sample: string;
}

export const FLANNELD_FLAGS: readonly FlanneldFlag[] = [
  { name: 'etcd-endpoints', type: 'string', default: 'http://127.0.0.1:4001,http://127.0.0.1:2379', sample: 'https://10.0.0.1:2379' },
  { name: 'etcd-prefix', type: 'string', default: '/coreos.com/network', sample: '/x/network' },
  { name: 'etcd-keyfile', type: 'string', default: '', sample: '/etc/etcd/key.pem' },
  { name: 'etcd-certfile', type: 'string', default: '', sample: '/etc/etcd/cert.pem' },
  { name: 'etcd-cafile', type: 'string', default: '', sample: '/etc/etcd/ca.pem' },
  { name: 'etcd-username', type: 'string', default: '', sample: 'flannel' },
  { name: 'etcd-password', type: 'string', default: '', sample: 'secret' },
  { name: 'iface', type: 'list', default: [], sample: 'eth1' },
  { name: 'iface-regex', type: 'list', default: [], sample: 'en.*' },
  { name: 'iface-can-reach', type: 'string', default: '', sample: '10.0.0.1' },
  { name: 'subnet-file', type: 'string', default: '/run/flannel/subnet.env', sample: '/tmp/subnet.env' },
  { name: 'public-ip', type: 'string', default: '', sample: '192.168.1.5' },
  { name: 'public-ipv6', type: 'string', default: '', sample: 'fd00::5' },
  { name: 'subnet-lease-renew-margin', type: 'int', default: 60, sample: '30' },
  { name: 'ip-masq', type: 'bool', default: false, sample: 'true' },
  { name: 'ip-masq-fully-random-disable', type: 'bool', default: false, sample: 'true' },
  { name: 'kube-subnet-mgr', type: 'bool', default: false, sample: 'true' },
  { name: 'kube-api-url', type: 'string', default: '', sample: 'https://10.96.0.1:443' },
  { name: 'kube-annotation-prefix', type: 'string', default: 'flannel.alpha.coreos.com', sample: 'example.com' },
  { name: 'kubeconfig-file', type: 'string', default: '', sample: '/etc/kubernetes/kubeconfig' },
  { name: 'version', type: 'bool', default: false, sample: 'false' },
  { name: 'healthz-ip', type: 'string', default: '0.0.0.0', sample: '127.0.0.1' },
  { name: 'healthz-port', type: 'int', default: 0, sample: '8081' },
  { name: 'iptables-resync', type: 'int', default: 5, sample: '10' },
  { name: 'iptables-forward-rules', type: 'bool', default: true, sample: 'false' },
  { name: 'ip-blackhole-route', type: 'bool', default: false, sample: 'true' },
  { name: 'net-config-path', type: 'string', default: '/etc/kube-flannel/net-conf.json', sample: '/tmp/net-conf.json' },
  { name: 'set-node-network-unavailable', type: 'bool', default: true, sample: 'false' },
  { name: 'v', type: 'int', default: 0, sample: '2' },
  { name: 'vmodule', type: 'string', default: '', sample: 'main=4,kube*=2' },
  { name: 'log_backtrace_at', type: 'string', default: '', sample: 'main.go:123' },
];
