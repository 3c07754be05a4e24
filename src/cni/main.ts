// tidepool-cni: the CNI IPAM plugin executable. The runtime (or the main plugin delegating IPAM) runs it with
// CNI_* variables and the network configuration on stdin; it prints a result or a CNI error on stdout.
import { CniErrorCode } from '../contract/cni-codes.ts';
import { failedBeforeParsing, runCni, unexpectedError, type PluginOutput } from './plugin.ts';

async function readStdin(): Promise<string> {
  // Run by hand from a terminal there is nothing to wait for: treat it as no configuration.
  if (process.stdin.isTTY) return '';
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function run(): Promise<PluginOutput> {
  let stdin: string;
  try {
    stdin = await readStdin();
  } catch (error) {
    return failedBeforeParsing({
      code: CniErrorCode.IOFailure,
      msg: 'could not read the network configuration from stdin',
      details: error instanceof Error ? error.message : String(error),
    });
  }
  return runCni(process.env, stdin);
}

function finish(output: PluginOutput): void {
  if (output.stderr !== '') process.stderr.write(output.stderr);
  // Exit as soon as stdout is flushed, even if the runtime closed it early (EPIPE).
  process.stdout.once('error', () => process.exit(output.exitCode));
  process.stdout.write(output.stdout, () => process.exit(output.exitCode));
}

run().then(finish, (error: unknown) => finish(failedBeforeParsing(unexpectedError(error))));
