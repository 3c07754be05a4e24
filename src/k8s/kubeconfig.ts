import { KubeConfig } from '@kubernetes/client-node';

/**
 * client-node 2.0 builds a new undici Agent for every API call, so every call opened a new TLS connection: in a
 * CPU profile of the API server under a pod burst, the handshakes took a fifth of its CPU. One KubeConfig
 * talks to one cluster as one user, so one dispatcher (a connection pool with keep-alive) serves all its calls.
 */
function reuseConnections(kubeConfig: KubeConfig): KubeConfig {
  const target = kubeConfig as unknown as { createDispatcher: (cluster: unknown, options: unknown) => unknown };
  const createDispatcher = target.createDispatcher.bind(kubeConfig);
  let dispatcher: unknown;
  target.createDispatcher = (cluster, options) => (dispatcher ??= createDispatcher(cluster, options));
  return kubeConfig;
}

/**
 * The cluster connection: the file named by `path` or $KUBECONFIG, else the in-cluster service account, else
 * ~/.kube/config. Fails with a message that says which source was tried.
 */
export function loadKubeConfig(path = process.env.KUBECONFIG, context?: string): KubeConfig {
  const kubeConfig = new KubeConfig();
  try {
    if (path) kubeConfig.loadFromFile(path);
    else kubeConfig.loadFromDefault();
  } catch (error) {
    const source = path ? `kubeconfig ${path}` : 'the default kubeconfig';
    throw new Error(`cannot load ${source}: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  }
  if (context !== undefined) {
    if (!kubeConfig.getContextObject(context)) {
      throw new Error(`no context ${context} in ${path ? `kubeconfig ${path}` : 'the default kubeconfig'} (contexts: ${kubeConfig.getContexts().map((c) => c.name).join(', ') || 'none'})`);
    }
    kubeConfig.setCurrentContext(context);
  }
  if (!kubeConfig.getCurrentCluster()) {
    throw new Error(`no current cluster in ${path ?? 'the default kubeconfig'}; set KUBECONFIG`);
  }
  return reuseConnections(kubeConfig);
}
