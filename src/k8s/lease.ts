import { setTimeout as sleep } from 'node:timers/promises';
import { CoordinationV1Api, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { kubeCall, kubeGetOptional, KubeApiError } from './errors.ts';
import { microTime } from './events.ts';

export interface LeaderElectionOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  /** The Lease's name: every replica that shares it elects one leader. */
  name: string;
  /** This replica, as the Lease's holderIdentity names it. */
  identity: string;
  /**
   * How long a candidate waits, from the moment it last saw the Lease change, before it takes it over (the Lease
   * carries it, so a released Lease, 1 s, is taken at once). The leader
   * renews every `durationMs / 7.5` and gives up leading once it could not renew for `durationMs * 2 / 3`, so it
   * stops before anyone else may start (client-go's 15 s, 10 s and 2 s).
   */
  durationMs: number;
  log: (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void;
}

/** What runs while this replica leads: started on each acquisition, stopped when the Lease is lost or on stop. */
export interface Leading {
  stop: () => Promise<void>;
}

export interface LeaderElection {
  /** Stops leading (releasing the Lease, so another replica takes over at once) and stops competing. */
  stop: () => Promise<void>;
}

/**
 * Kubernetes leader election on a coordination.k8s.io Lease, as client-go's leaderelection package does it:
 * the holder renews the Lease; a candidate takes it once it has seen no renewal for the lease duration, by
 * its own clock (never by comparing its clock with the holder's), and every write carries the resourceVersion
 * it read, so two candidates never both win. `lead` runs on each acquisition; its `stop` runs when the Lease is
 * lost, and this replica competes again.
 */
export function electLeader(options: LeaderElectionOptions, lead: () => Promise<Leading>): LeaderElection {
  const api = options.kubeConfig.makeApiClient(CoordinationV1Api);
  const { namespace, name, identity, durationMs, log } = options;
  const retryMs = Math.max(100, Math.round(durationMs / 7.5));
  const renewDeadlineMs = Math.round((durationMs * 2) / 3);
  const what = `Lease ${namespace}/${name}`;
  const stopping = new AbortController();
  let observed: { resourceVersion: string; at: number } | undefined;

  /**
   * One attempt to acquire or renew: `held` when this replica holds the Lease after it, `another` when another
   * replica holds it and it has not expired. It throws when the API server refused or could not be reached,
   * which `attempt` reports as `failed`.
   */
  async function tryAcquireOrRenew(): Promise<'held' | 'another'> {
    const now = new Date();
    const current = await kubeGetOptional(`get ${what}`, () => api.readNamespacedLease({ namespace, name }));
    const spec = {
      holderIdentity: identity,
      leaseDurationSeconds: Math.ceil(durationMs / 1000),
      renewTime: microTime(now),
    };
    if (!current) {
      await kubeCall(`create ${what}`, () =>
        api.createNamespacedLease({ namespace, body: { metadata: { name, namespace }, spec: { ...spec, acquireTime: microTime(now), leaseTransitions: 0 } } }),
      );
      return 'held';
    }
    const resourceVersion = current.metadata?.resourceVersion ?? '';
    if (observed?.resourceVersion !== resourceVersion) observed = { resourceVersion, at: now.getTime() };
    const holder = current.spec?.holderIdentity ?? '';
    const mine = holder === identity;
    const heldForMs = (current.spec?.leaseDurationSeconds ?? durationMs / 1000) * 1000;
    if (!mine && holder !== '' && now.getTime() < observed.at + heldForMs) return 'another';
    const body: V1Lease = {
      ...current,
      spec: {
        ...current.spec,
        ...spec,
        ...(mine ? {} : { acquireTime: microTime(now), leaseTransitions: (current.spec?.leaseTransitions ?? 0) + 1 }),
      },
    };
    const written = await kubeCall(`update ${what}`, () => api.replaceNamespacedLease({ namespace, name, body }));
    observed = { resourceVersion: written.metadata?.resourceVersion ?? '', at: now.getTime() };
    return 'held';
  }

  async function attempt(): Promise<'held' | 'another' | 'failed'> {
    try {
      return await tryAcquireOrRenew();
    } catch (error) {
      // A conflict or an AlreadyExists is another candidate's write: it leads, or the next attempt decides.
      if (!(error instanceof KubeApiError && error.code === 409)) log('warn', `could not acquire or renew the ${what}`, { error: (error as Error).message });
      return 'failed';
    }
  }

  async function run(): Promise<void> {
    while (!stopping.signal.aborted) {
      if ((await attempt()) !== 'held') {
        await sleep(retryMs, undefined, { signal: stopping.signal }).catch(() => undefined);
        continue;
      }
      log('info', `leading: holds the ${what}`, { identity });
      let leading: Leading;
      try {
        leading = await lead();
      } catch (error) {
        log('warn', 'could not start leading; trying again', { error: (error as Error).message });
        await sleep(retryMs, undefined, { signal: stopping.signal }).catch(() => undefined);
        continue;
      }
      let renewedAt = Date.now();
      while (!stopping.signal.aborted) {
        await sleep(retryMs, undefined, { signal: stopping.signal }).catch(() => undefined);
        if (stopping.signal.aborted) break;
        const outcome = await attempt();
        if (outcome === 'held') {
          renewedAt = Date.now();
        } else if (outcome === 'another' || Date.now() - renewedAt >= renewDeadlineMs) {
          log('warn', `lost the ${what}: stopped leading`, { identity, unrenewedMs: Date.now() - renewedAt, heldByAnother: outcome === 'another' });
          break;
        }
      }
      await leading.stop();
    }
  }

  /** Hands the Lease back, so that a candidate need not wait out its duration. */
  async function release(): Promise<void> {
    const current = await kubeGetOptional(`get ${what}`, () => api.readNamespacedLease({ namespace, name }));
    if (current?.spec?.holderIdentity !== identity) return;
    await kubeCall(`update ${what}`, () =>
      api.replaceNamespacedLease({ namespace, name, body: { ...current, spec: { ...current.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime(new Date()) } } }),
    );
    log('info', `released the ${what}`, { identity });
  }

  const running = run();
  return {
    async stop() {
      stopping.abort();
      await running;
      await release().catch((error: unknown) => log('warn', `could not release the ${what}; a candidate takes it once it expires`, { error: (error as Error).message }));
    },
  };
}
