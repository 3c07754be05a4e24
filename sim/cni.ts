import { execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export type CniCommand = 'ADD' | 'DEL';

export interface CniCall {
  command: CniCommand;
  containerID: string;
  pod: { namespace: string; name: string; uid: string };
  interface?: string;
  netconf: string;
  /** CNI_NETNS: the sandbox's network namespace; by default a path that does not exist, for plugins that never open it. */
  netns?: string;
}

export interface CniOutcome {
  ok: boolean;
  /** The IP addresses (without prefix length) of a successful ADD. */
  ips: string[];
  /** The plugin's error message, or how the process failed. */
  error?: string;
  ms: number;
}

/** A fresh sandbox ID, 64 hex digits as container runtimes make them. */
export const newContainerID = () => randomBytes(32).toString('hex');

/**
 * Invokes a CNI plugin the way a container runtime does: a separate process, the CNI_* environment and the
 * network configuration on stdin; the result (or a spec-shaped error) is JSON on stdout. `onSpawn` gets the
 * running process (a chaos run kills some).
 */
export function invokeCni(
  binary: string,
  cniPath: string,
  call: CniCall,
  timeoutMs = 60_000,
  onSpawn?: (child: ChildProcess) => void,
): Promise<CniOutcome> {
  const started = performance.now();
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    CNI_COMMAND: call.command,
    CNI_CONTAINERID: call.containerID,
    CNI_NETNS: call.netns ?? `/var/run/netns/cni-${call.containerID.slice(0, 12)}`,
    CNI_IFNAME: call.interface ?? 'eth0',
    CNI_PATH: cniPath,
    CNI_ARGS: [
      'IgnoreUnknown=1',
      `K8S_POD_NAMESPACE=${call.pod.namespace}`,
      `K8S_POD_NAME=${call.pod.name}`,
      `K8S_POD_INFRA_CONTAINER_ID=${call.containerID}`,
      `K8S_POD_UID=${call.pod.uid}`,
    ].join(';'),
  };
  return new Promise((resolve) => {
    const child = execFile(binary, [], { env, timeout: timeoutMs, maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
      const ms = performance.now() - started;
      let parsed: { ips?: { address?: string }[]; ip4?: { ip?: string }; ip6?: { ip?: string }; msg?: string; details?: string } | undefined;
      try {
        parsed = stdout.trim() ? JSON.parse(stdout) : undefined;
      } catch {
        parsed = undefined;
      }
      if (error) {
        // Without a spec-shaped error on stdout, the last line of stderr is the plugin's last word (earlier lines are logs).
        const message = parsed?.msg ? `${parsed.msg}${parsed.details ? `: ${parsed.details}` : ''}` : (stderr.trim() || error.message).split('\n').at(-1)!;
        resolve({ ok: false, ips: [], error: message, ms });
        return;
      }
      // CNI 1.0/0.4 results carry ips[]; 0.2 results ip4/ip6.
      const addresses = parsed?.ips?.map((entry) => entry.address ?? '') ?? [parsed?.ip4?.ip, parsed?.ip6?.ip].filter((ip): ip is string => Boolean(ip));
      resolve({ ok: true, ips: addresses.filter(Boolean).map((address) => address.split('/')[0]!), ms });
    });
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(call.netconf);
    onSpawn?.(child);
  });
}
