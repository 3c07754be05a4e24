import { KubeConfig } from '@kubernetes/client-node';

/**
 * The cluster connection: the file named by `path` or $KUBECONFIG, else the in-cluster service account, else
 * ~/.kube/config. Fails with a message that says which source was tried.
 */
export function loadKubeConfig(path = process.env.KUBECONFIG): KubeConfig {
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
  if (!kubeConfig.getCurrentCluster()) {
    throw new Error(`no current cluster in ${path ?? 'the default kubeconfig'}; set KUBECONFIG`);
  }
  return kubeConfig;
}
