import { Client, Connection } from '@temporalio/client';
import { loadAgentConfig } from '../config.ts';
import { jsonLog } from '../log.ts';
import { createAgent } from './agent.ts';
import { serveAgent } from './server.ts';

const log = jsonLog;

async function main(): Promise<void> {
  const config = loadAgentConfig();
  // Connection.lazy: the agent serves (and spools DELs) even while Temporal is down.
  const connection = Connection.lazy(config.temporalConnection);
  const client = new Client({ connection, namespace: config.temporalNamespace });
  const agent = createAgent({ client, ...config, log });
  const server = await serveAgent(agent, config.socketPath, (error) => log('error', 'request failed', { error: error.message }));
  log('info', 'tidepool agent listening', { socket: config.socketPath, temporal: config.temporalAddress, node: config.nodeName });

  const replay = async () => {
    try {
      const { replayed, pending } = await agent.replaySpool();
      if (replayed + pending > 0) log('info', 'replayed spooled DELs', { replayed, pending });
    } catch (error) {
      log('error', 'spool replay failed', { error: (error as Error).message });
    }
  };
  await replay();
  const timer = setInterval(() => void replay(), config.spoolReplayIntervalMs);

  const stop = () => {
    clearInterval(timer);
    server.close(() => void connection.close().finally(() => process.exit(0)));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((error: unknown) => {
  log('error', (error as Error).message);
  process.exit(1);
});
