import { readFileSync, statSync } from 'node:fs';
import { loadWebhookConfig } from '../config.ts';
import { jsonLog } from '../log.ts';
import { loadKubeConfig } from '../k8s/kubeconfig.ts';
import { serveWebhook } from './server.ts';

const log = jsonLog;

/** The admission webhook process: TLS only, with the serving certificate reloaded when its files change (cert-manager rotation). */
async function main(): Promise<void> {
  const config = loadWebhookConfig();
  const readPair = () => ({ cert: readFileSync(config.certFile), key: readFileSync(config.keyFile) });
  const stamp = () => `${statSync(config.certFile).mtimeMs}/${statSync(config.keyFile).mtimeMs}`;
  let loaded = stamp();
  const { server, port } = await serveWebhook({
    kubeConfig: loadKubeConfig(config.kubeconfig),
    refuseDeleteWithAllocatedIPs: config.refuseDeleteWithAllocatedIPs,
    host: config.host,
    port: config.port,
    ...readPair(),
    onDecision: (decision) => log(decision.allowed ? 'info' : 'warn', 'admission decision', { ...decision }),
  });
  log('info', 'tidepool webhook listening', { host: config.host, port, refuseDeleteWithAllocatedIPs: config.refuseDeleteWithAllocatedIPs });

  const reload = setInterval(() => {
    try {
      const current = stamp();
      if (current === loaded) return;
      server.setSecureContext(readPair());
      loaded = current;
      log('info', 'reloaded the serving certificate', { certFile: config.certFile });
    } catch (error) {
      log('error', 'could not reload the serving certificate; serving the previous one', { error: (error as Error).message });
    }
  }, config.certReloadIntervalMs);
  const stop = () => {
    clearInterval(reload);
    server.close(() => process.exit(0));
    server.closeAllConnections();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((error: unknown) => {
  log('error', (error as Error).message);
  process.exit(1);
});
