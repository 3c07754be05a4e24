/** The items of a comma-separated list, each one of `allowed`. */
export function choose<T extends string>(list: string, allowed: readonly T[], what: string): T[] {
  const chosen = list.split(',').map((item) => item.trim()).filter(Boolean);
  const unknown = chosen.filter((item) => !allowed.includes(item as T));
  if (unknown.length > 0 || chosen.length === 0) throw new Error(`--${what}: ${unknown.join(', ') || '(none)'} not one of ${allowed.join(', ')}`);
  return chosen as T[];
}

/** A port number flag's value, or undefined when the flag is not given. */
export function optionalPort(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`--${flag} ${value} is not a port number`);
  return port;
}

/** Runs a benchmark's argument parsing: a bad argument (unknown flag, bad value) prints its message and exits with code 2. */
export function parseOrExit<T>(program: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    console.error(`${program}: ${(error as Error).message}`);
    process.exit(2);
  }
}

/** Runs a benchmark's main function: exit code 0 when it resolves, else its message and exit code 1. */
export function runMain(program: string, main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(`${program}: ${(error as Error).message}`);
      process.exit(1);
    },
  );
}
