import { describe, expect, it } from 'vitest';
import { parseConfigFile, RECLAIM_DEFAULTS, resolveReclaimSettings } from '../../src/gc/config.ts';

describe('reclaim settings', () => {
  it('defaults to Spiderpool-like switches, a 5 minute sweep, a 60 s minimum record age, no cooldown and write spacing 2', () => {
    expect(resolveReclaimSettings(undefined, {})).toEqual(RECLAIM_DEFAULTS);
    expect(RECLAIM_DEFAULTS).toMatchObject({ sweepIntervalMs: 300_000, reuseCooldownMs: 0, poolWriteSpacing: 2, gc: { enabled: true, minRecordAgeMs: 60_000 } });
  });

  it('takes the file over the defaults and the environment over the file', () => {
    const file = parseConfigFile('gc:\n  enabled: false\n  sweepInterval: 2m\n  additionalGraceDelay: 30\n  namespaceSelector: team=a\nallocation:\n  reuseCooldown: 10s\n  poolWriteSpacing: 1.5\n', 'tidepool.yaml');
    const settings = resolveReclaimSettings(file, { TIDEPOOL_GC_ENABLED: 'true', TIDEPOOL_GC_TERMINATING_ON_NOT_READY_NODE: 'false' });
    expect(settings).toEqual({
      gc: { ...RECLAIM_DEFAULTS.gc, enabled: true, reclaimTerminatingOnNotReadyNode: false, additionalGraceDelayMs: 30_000 },
      namespaceSelector: 'team=a',
      sweepIntervalMs: 120_000,
      reuseCooldownMs: 10_000,
      poolWriteSpacing: 1.5,
    });
    expect(resolveReclaimSettings(file, { TIDEPOOL_POOL_WRITE_SPACING: '0' }).poolWriteSpacing).toBe(0);
    expect(resolveReclaimSettings(file, { TIDEPOOL_GC_NAMESPACE_SELECTOR: '!tidepool.dev/test-run' }).namespaceSelector).toBe('!tidepool.dev/test-run');
  });

  it.each([
    [{ gc: { enabled: 'yes' } }, {}, 'config file gc.enabled must be true or false, not "yes"'],
    [{ gc: { sweepInterval: 'soon' } }, {}, 'config file gc.sweepInterval="soon" is not a duration'],
    [{ gc: { enable: true } }, {}, 'config file: unknown setting gc.enable'],
    [{ gc: { namespaceSelector: 3 } }, {}, 'config file gc.namespaceSelector must be a string, not 3'],
    [{ reclaim: {} }, {}, 'config file: unknown section reclaim (expected gc or allocation)'],
    [undefined, { TIDEPOOL_GC_MIN_RECORD_AGE: '-1s' }, 'TIDEPOOL_GC_MIN_RECORD_AGE="-1s" is not a duration'],
    [undefined, { TIDEPOOL_GC_SWEEP_INTERVAL: '1s' }, 'the sweep interval must be at least 10s'],
    [{ allocation: { poolWriteSpacing: -1 } }, {}, 'config file allocation.poolWriteSpacing must be a number of 0 or more, not -1'],
    [undefined, { TIDEPOOL_POOL_WRITE_SPACING: 'twice' }, 'TIDEPOOL_POOL_WRITE_SPACING must be a number of 0 or more, not "twice"'],
  ])('rejects %j %j', (file, env, message) => {
    expect(() => resolveReclaimSettings(file, env)).toThrow(message);
  });

  it('names the file when it is not YAML', () => {
    expect(() => parseConfigFile('gc: [unclosed', '/etc/tidepool/config.yaml')).toThrow('/etc/tidepool/config.yaml is not valid YAML');
  });
});
