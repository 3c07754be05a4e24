// Runs one fuzz property with fast-check and keeps the figures: the test suite asserts on them with modest
// run counts, `npm run fuzz` (bench/fuzz.ts) prints and records them for large ones.
import fc from 'fast-check';

export interface FuzzFigure {
  target: string;
  runs: number;
  failures: number;
  seconds: number;
  /** The shrunk failing input and the error it gave, when the property failed. */
  counterexample?: string;
  error?: string;
  seed: number;
}

/** Checks `property` for `runs` inputs; a failure is reported in the figure, not thrown. */
export async function fuzz<T>(
  target: string,
  property: fc.IAsyncPropertyWithHooks<[T]> | fc.IPropertyWithHooks<[T]>,
  runs: number,
  seed = Date.now() ^ (Math.random() * 0x7fffffff),
): Promise<FuzzFigure> {
  const started = performance.now();
  const details = await fc.check(property as fc.IAsyncProperty<[T]>, { numRuns: runs, seed, endOnFailure: false });
  const figure: FuzzFigure = {
    target,
    runs: details.numRuns,
    failures: details.failed ? 1 : 0,
    seconds: Math.round((performance.now() - started) / 10) / 100,
    seed,
  };
  if (details.failed) {
    const input = fc.stringify(details.counterexample);
    figure.counterexample = input.length > 2000 ? `${input.slice(0, 2000)}... (${input.length} characters)` : input;
    figure.error = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
  }
  return figure;
}

/** Throws with the counterexample when a figure records a failure (for the test suite). */
export function assertNoFailure(figure: FuzzFigure): void {
  if (figure.failures > 0) {
    throw new Error(
      `fuzz target ${figure.target} failed after ${figure.runs} runs (seed ${figure.seed}):\n` +
        `input: ${figure.counterexample}\nerror: ${figure.error}`,
    );
  }
}
