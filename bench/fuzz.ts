// npm run fuzz [-- --runs cni-parser=100000,agent-socket=3000 --only webhook-https --seed 42 --out bench/results/fuzz.json]
// Runs the fuzz properties of test/fuzz with large run counts on the local stack (started if it is not
// running), prints runs, failures and time per target, and writes them to --out. Exits 1 if any failed.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { buildCni } from '../scripts/build-cni.ts';
import { loadKubeConfig } from '../src/k8s/kubeconfig.ts';
import { readStackInfo, up } from '../stack/stack.ts';
import { stackPaths } from '../stack/config.ts';
import { agentProperty, lifecycleWorkflowIds, poolSnapshot, sideEffectProblems, startAgentUnderFuzz, type AgentLedger } from '../test/fuzz/agent.ts';
import { parserProperty, pluginProperty, processProperty, recordingAnswer } from '../test/fuzz/cni.ts';
import { fuzz, type FuzzFigure } from '../test/fuzz/run.ts';
import { admissionProperty, startWebhookProcess, webhookProcessProperty } from '../test/fuzz/webhook.ts';
import { startFakeAgent } from '../test/unit/cni-fake-agent.ts';
import { markdownTable } from './report.ts';

const DEFAULT_RUNS: Record<string, number> = {
  'cni-parser': 100_000,
  'cni-plugin': 20_000,
  'cni-process': 1_000,
  'webhook-admission': 50_000,
  'webhook-https': 2_000,
  'agent-socket': 3_000,
};

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '' },
    only: { type: 'string', default: '' },
    seed: { type: 'string' },
    out: { type: 'string', default: 'bench/results/fuzz.json' },
  },
});
const runs = { ...DEFAULT_RUNS };
for (const entry of args.runs.split(',').filter(Boolean)) {
  const [target, count] = entry.split('=');
  if (!target || !(target in DEFAULT_RUNS) || !Number.isInteger(Number(count)) || Number(count) < 1) {
    throw new Error(`--runs ${entry}: expected <target>=<count> with a target of ${Object.keys(DEFAULT_RUNS).join(', ')}`);
  }
  runs[target] = Number(count);
}
const only = new Set(args.only.split(',').filter(Boolean));
const selected = (target: string) => only.size === 0 || only.has(target);
const seed = args.seed === undefined ? Date.now() % 2 ** 31 : Number(args.seed);

Runtime.install({ logger: new DefaultLogger('ERROR') });
const figures: FuzzFigure[] = [];
const notes: string[] = [];
const record = (figure: FuzzFigure) => {
  figures.push(figure);
  const outcome = figure.failures === 0 ? 'ok' : `FAILED\n  input: ${figure.counterexample}\n  error: ${figure.error}`;
  console.log(`${figure.target}: ${figure.runs} runs, ${figure.failures} failures, ${figure.seconds} s: ${outcome}`);
};

const info = readStackInfo() ?? (await up(undefined, (line) => console.log(`[stack] ${line}`)));
const kubeConfig = loadKubeConfig(info.kubeconfig);
const started = Date.now();

if (selected('cni-parser')) record(await fuzz('cni-parser', parserProperty(), runs['cni-parser']!, seed));
if (selected('cni-plugin') || selected('cni-process')) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tidepool-fuzz-cni-'));
  const agent = await startFakeAgent(dir, recordingAnswer);
  try {
    if (selected('cni-plugin')) record(await fuzz('cni-plugin', pluginProperty(agent, path.join(dir, 'spool')), runs['cni-plugin']!, seed));
    if (selected('cni-process')) {
      const bundle = await buildCni();
      record(await fuzz('cni-process', processProperty(bundle, agent, path.join(dir, 'spool')), runs['cni-process']!, seed));
    }
  } finally {
    await agent.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
if (selected('webhook-admission')) record(await fuzz('webhook-admission', admissionProperty(kubeConfig), runs['webhook-admission']!, seed));
if (selected('webhook-https')) {
  const paths = stackPaths();
  const webhook = await startWebhookProcess({ kubeconfig: info.kubeconfig, certFile: paths.servingCert, keyFile: paths.servingKey });
  try {
    record(await fuzz('webhook-https', webhookProcessProperty(webhook, readFileSync(info.caFile, 'utf8')), runs['webhook-https']!, seed));
    if (webhook.child.exitCode !== null) notes.push(`webhook-https: the webhook process exited with ${webhook.child.exitCode}`);
  } finally {
    await webhook.stop();
  }
}
if (selected('agent-socket')) {
  const agent = await startAgentUnderFuzz(info);
  try {
    const ledger: AgentLedger = { refused: new Set(), accepted: new Set() };
    const before = await poolSnapshot(agent.tidepool);
    const figure = await fuzz('agent-socket', agentProperty(agent, ledger), runs['agent-socket']!, seed);
    const problems = sideEffectProblems(ledger, await lifecycleWorkflowIds(agent), before, await poolSnapshot(agent.tidepool));
    if (problems.length > 0) {
      figure.failures += 1;
      figure.error = [figure.error, ...problems].filter(Boolean).join('\n');
    }
    record(figure);
    notes.push(
      `agent-socket: requests refused before Temporal named ${ledger.refused.size} lifecycle IDs, ` +
        `requests that got past the checks (for pods that do not exist) ${ledger.accepted.size}; ` +
        (problems.length === 0 ? 'no refused request started a lifecycle, no IPPool was written' : `side effects: ${problems.join('; ')}`),
    );
    if (agent.agentProcess.exitCode !== null) notes.push(`agent-socket: the agent process exited with ${agent.agentProcess.exitCode}`);
  } finally {
    await agent.stop();
  }
}

const seconds = Math.round((Date.now() - started) / 1000);
console.log('');
console.log(markdownTable(['target', 'runs', 'failures', 'seconds'], figures.map((f) => [f.target, String(f.runs), String(f.failures), String(f.seconds)])));
for (const note of notes) console.log(note);
mkdirSync(path.dirname(args.out), { recursive: true });
writeFileSync(
  args.out,
  `${JSON.stringify({ date: new Date().toISOString(), command: ['npm run fuzz', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(' '), seed, seconds, cpus: os.cpus().length, targets: figures, notes }, null, 2)}\n`,
);
console.log(`wrote ${args.out}`);
process.exit(figures.some((figure) => figure.failures > 0) ? 1 : 0);
