import { STACK_NODE, STACK_POD_NAMESPACE } from './components.ts';
import { stackConfig } from './config.ts';
import { down, readStackInfo, reset, status, up, type StackInfo } from './stack.ts';

const log = (line: string) => console.log(line);

function printInfo(info: StackInfo): void {
  console.log(`
Local stack is up.
  Kubernetes API server  ${info.apiServer}
  kubectl                export KUBECONFIG=${info.kubeconfig}
  Temporal               ${info.temporalAddress} (namespace ${info.temporalNamespace})
  Temporal UI            ${info.temporalUi}${info.agentSocket ? `
  Tidepool               worker on task queue tidepool; node agent at ${info.agentSocket}` : ''}${info.webhook ? `
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
    case 'up':
      printInfo(await up(undefined, log, { tidepool: !process.argv.includes('--stack-only') }));
      return 0;
    case 'down':
      await down(undefined, log);
      return 0;
    case 'reset':
      await reset(undefined, log);
      return 0;
    case 'status': {
      const components = status();
      for (const c of components) {
        console.log(`${c.name.padEnd(24)} ${c.pid ? `running (pid ${c.pid})` : 'stopped'.padEnd(20)}  ${c.log}`);
      }
      const info = readStackInfo();
      if (info) printInfo(info);
      return components.every((c) => c.pid !== undefined) ? 0 : 3;
    }
    default:
      console.error('usage: stack up [--stack-only]|down|status|reset');
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
