// The local stack's node (the `tidepool-kubelet` component of `./dev up`): registers the Node the stack's agent
// serves (NODE_NAME) and keeps it Ready as a kubelet does, so kube-controller-manager's pod GC leaves the pods
// bound to it alone; and starts the sandboxes of the pods in its namespace through tidepool-cni and the agent.
import path from 'node:path';
import { loadKubeConfig } from '../src/k8s/kubeconfig.ts';
import { SimulatedKubelet } from './kubelet.ts';

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

/**
 * The network configuration the node's runtime hands tidepool-cni, as the chart's CNI config does; `node` names
 * the node for an agent that serves several (the demo's simulated nodes share the stack's agent).
 */
export function stackNetconf(agentSocket: string, spoolDir: string, node?: string): string {
  const ipam = { type: 'tidepool', agent_socket: agentSocket, spool_dir: spoolDir, ...(node ? { node_name: node } : {}) };
  return JSON.stringify({ cniVersion: '1.0.0', name: 'underlay', type: 'macvlan', master: 'eth0', ipam });
}

async function main(): Promise<void> {
  const binary = required('TIDEPOOL_CNI_BINARY');
  const netconf = stackNetconf(required('TIDEPOOL_AGENT_SOCKET'), required('TIDEPOOL_SPOOL_DIR'));
  const kubelet = new SimulatedKubelet({
    kubeConfig: loadKubeConfig(),
    nodes: [required('NODE_NAME')],
    namespace: process.env.TIDEPOOL_KUBELET_NAMESPACE || 'default',
    cni: { binary, cniPath: path.dirname(binary), netconf: () => netconf },
  });
  await kubelet.start();
  console.log(JSON.stringify({ level: 'info', message: 'simulated kubelet started', node: process.env.NODE_NAME, namespace: process.env.TIDEPOOL_KUBELET_NAMESPACE || 'default' }));
  const stop = () => void kubelet.stop().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (import.meta.main) {
  main().catch((error: unknown) => {
    console.error(`tidepool-kubelet: ${(error as Error).message}`);
    process.exit(1);
  });
}
