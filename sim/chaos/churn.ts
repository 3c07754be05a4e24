// The chaos run's steady churn: a pod created every 1/rate seconds, and once `pods` are live, one of them
// deleted at random before each creation.
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChaosScope } from './facts.ts';

const POOL_ANNOTATION = 'ipam.tidepool.dev/ippool';

export interface ChurnCounts {
  podsCreated: number;
  podsDeleted: number;
  /** Pod creations and deletions the API server refused or could not take; retried later. */
  churnErrors: number;
  /** The pods created and not deleted yet. */
  live: string[];
}

/** Churns until `stopping` aborts; the counts move as it goes, and `done` settles when it has stopped. */
export function startChurn(
  { core, namespace, pool }: ChaosScope,
  settings: { rate: number; pods: number },
  random: () => number,
  stopping: AbortSignal,
): { counts: ChurnCounts; done: Promise<void> } {
  const counts: ChurnCounts = { podsCreated: 0, podsDeleted: 0, churnErrors: 0, live: [] };
  const { live } = counts;
  let sequence = 0;
  const churn = async () => {
    const tickMs = 1000 / settings.rate;
    for (let next = Date.now(); !stopping.aborted; next += tickMs) {
      await sleep(Math.max(0, next - Date.now()));
      if (stopping.aborted) break;
      if (live.length >= settings.pods) {
        const index = Math.floor(random() * live.length);
        const name = live[index]!;
        try {
          await core.deleteNamespacedPod({ namespace, name });
          live.splice(index, 1);
          counts.podsDeleted++;
        } catch (error) {
          if ((error as { code?: number }).code === 404) live.splice(index, 1);
          counts.churnErrors++;
          continue;
        }
      }
      const name = `churn-${sequence++}`;
      try {
        await core.createNamespacedPod({
          namespace,
          body: {
            metadata: { name, labels: { app: 'chaos' }, annotations: { [POOL_ANNOTATION]: JSON.stringify({ ipv4: [pool] }) } },
            spec: { containers: [{ name: 'app', image: 'registry.invalid/pause:1' }], terminationGracePeriodSeconds: 5 },
          },
        });
        live.push(name);
        counts.podsCreated++;
      } catch {
        counts.churnErrors++;
      }
    }
  };
  return { counts, done: churn() };
}
