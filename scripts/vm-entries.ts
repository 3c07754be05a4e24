// Counts how often a process enters a vm context (the Temporal SDK enters its workflow sandbox several times per
// workflow activation, each time with a `timeout`, which makes Node start and join a watchdog thread), and prints
// the count with the wall time spent inside, every 10 s, from each worker thread that entered one. Load it into
// the stack's processes and read the worker's log:
//   NODE_OPTIONS="--import ./scripts/vm-entries.ts" ./dev up
//   grep vmEntries .cache/stack/logs/tidepool-worker.log
// Run on its own, it measures what one entry costs with and without a timeout on this machine:
//   node scripts/vm-entries.ts --cost
import vm from 'node:vm';
import { isMainThread, threadId } from 'node:worker_threads';

function measureCost(): void {
  const context = vm.createContext({});
  const script = new vm.Script('1 + 1');
  const entries = 20_000;
  for (const timeout of [undefined, 5000]) {
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    for (let i = 0; i < entries; i++) script.runInContext(context, timeout === undefined ? undefined : { timeout });
    const cpu = process.cpuUsage(cpuBefore);
    const wallUs = ((performance.now() - started) * 1000) / entries;
    const cpuUs = (cpu.user + cpu.system) / entries;
    console.log(`${timeout === undefined ? 'no timeout' : `timeout ${timeout} ms`}: ${wallUs.toFixed(1)} µs wall, ${cpuUs.toFixed(1)} µs CPU per entry (${entries} entries)`);
  }
}

function countEntries(): void {
  const stats = { vmEntries: 0, withTimeout: 0, insideMs: 0 };
  const count = <A extends unknown[], R>(enter: (...args: A) => R, options: (args: A) => vm.RunningScriptOptions | undefined) =>
    function (this: unknown, ...args: A): R {
      stats.vmEntries++;
      if (options(args)?.timeout !== undefined) stats.withTimeout++;
      const started = performance.now();
      try {
        return enter.apply(this, args);
      } finally {
        stats.insideMs += performance.now() - started;
      }
    };
  vm.Script.prototype.runInContext = count(vm.Script.prototype.runInContext, (args) => args[1]);
  const runInContext = vm.runInContext;
  vm.runInContext = count(runInContext, (args) => (typeof args[2] === 'object' ? args[2] : undefined)) as typeof vm.runInContext;
  if (isMainThread) return;
  setInterval(() => {
    if (stats.vmEntries > 0) process.stderr.write(`${JSON.stringify({ thread: threadId, ...stats, insideMs: Math.round(stats.insideMs) })}\n`);
  }, 10_000).unref();
}

if (process.argv[2] === '--cost' && import.meta.filename === process.argv[1]) measureCost();
else countEntries();
