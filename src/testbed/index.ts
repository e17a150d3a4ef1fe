/** The namespace testbed: one import for the demo, the tests and the bench. */
export { Testbed, ensureTools, findTool, checkIfName } from './testbed.js';
export type { ExecResult, ExecOptions, SpawnOptions, ToolSpec } from './testbed.js';
export { twoHosts, nHosts, attachPod } from './topology.js';
export type { Host, Pod, HostsOptions, PodOptions } from './topology.js';
export { ping, parsePing, waitReachable, iperf3Server, iperf3Client, summarizeIperf3 } from './tools.js';
export type { PingOptions, PingResult, Iperf3Server, Iperf3ClientOptions, Iperf3Summary, Iperf3Result } from './tools.js';
