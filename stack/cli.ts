import { STACK_NODE, STACK_POD_NAMESPACE } from './components.ts';
import { stackConfig, temporalKind, workerCount, type StackConfig } from './config.ts';
import { chosenTemporal, down, readStackInfo, reset, runningTemporal, status, up, type StackInfo } from './stack.ts';

const log = (line: string) => console.log(line);

const TEMPORAL_TEXT: Record<StackInfo['temporal'], string> = {
  dev: 'the Temporal CLI\'s dev server (SQLite)',
  server: 'the Temporal server on PostgreSQL',
  external: 'a Temporal server the stack did not start',
};

/** The value after `--name` or in `--name=value`, if given. */
function flag(name: string): string | undefined {
  const args = process.argv.slice(3);
  const inline = args.find((arg) => arg.startsWith(`--${name}=`));
  if (inline) return inline.slice(name.length + 3);
  const at = args.indexOf(`--${name}`);
  if (at < 0) return undefined;
  const value = args[at + 1];
  if (value === undefined || value.startsWith('--')) throw new Error(`--${name} needs a value`);
  return value;
}

/** The stack's settings with the command line's --temporal and --workers over the environment's. */
function configFromArgs(): StackConfig {
  const temporal = flag('temporal');
  const workers = flag('workers');
  return {
    ...stackConfig,
    ...(temporal !== undefined ? { temporal: temporalKind(temporal) ?? 'dev' } : {}),
    ...(workers !== undefined ? { workers: workerCount(workers, '--workers') } : {}),
  };
}

function printInfo(info: StackInfo): void {
  console.log(`
Local stack is up.
  Kubernetes API server  ${info.apiServer}
  kubectl                export KUBECONFIG=${info.kubeconfig}
  Temporal               ${info.temporalAddress} (namespace ${info.temporalNamespace}), ${TEMPORAL_TEXT[info.temporal]}
  Temporal UI            ${info.temporalUi ?? 'none (the Temporal CLI serves its UI only with the dev server)'}${info.agentSocket ? `
  Tidepool               ${info.workers ?? 1} worker${(info.workers ?? 1) > 1 ? 's' : ''} on task queue tidepool; node agent at ${info.agentSocket}` : ''}${info.webhook ? `
  Admission webhook      ${info.webhook} (registered as the configurations named tidepool)` : ''}${info.agentSocket ? `
  Node                   ${STACK_NODE}, kept Ready by a simulated kubelet that starts the ${STACK_POD_NAMESPACE} namespace's pods` : ''}
  State and logs         ${info.dir}${info.agentSocket ? `

Try next:
  export KUBECONFIG=${info.kubeconfig} PATH=${stackConfig.binDir}:$PATH
  kubectl get nodes,tpp                 the stack's node, and the pools
  ./dev demo                            the main job in about a minute: a pool, a Deployment, a lost DEL, a dead node
  kubectl tidepool status -a            every pool and IP, with its verdict
  kubectl get events -A                 what Tidepool reported` : ''}`);
}

async function main(command: string | undefined): Promise<number> {
  switch (command) {
    case 'up': {
      const config = configFromArgs();
      const started = Date.now();
      printInfo(await up(config, log, { tidepool: !process.argv.includes('--stack-only') }));
      console.log(`  (${chosenTemporal(config) === 'server' ? 'real Temporal server; ' : ''}up took ${((Date.now() - started) / 1000).toFixed(1)} s)`);
      return 0;
    }
    case 'down':
      await down(undefined, log);
      return 0;
    case 'reset':
      await reset(undefined, log);
      return 0;
    case 'status': {
      const running = runningTemporal();
      console.log(
        `Temporal: ${running ? TEMPORAL_TEXT[running] : `none runs (up starts ${TEMPORAL_TEXT[stackConfig.temporal ?? 'dev']})`}`,
      );
      const components = status();
      for (const c of components) {
        console.log(`${c.name.padEnd(24)} ${c.pid ? `running (pid ${c.pid})` : 'stopped'.padEnd(20)}  ${c.log}`);
      }
      const info = readStackInfo();
      if (info) printInfo(info);
      return components.every((c) => c.pid !== undefined) ? 0 : 3;
    }
    default:
      console.error('usage: stack up [--stack-only] [--temporal dev|server] [--workers N]|down|status|reset');
      return 2;
  }
}

main(process.argv[2]).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`stack: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
