import { describe, expect, it } from 'vitest';
import { devServerSearchAttributeArgs } from '../../src/temporal/search-attributes.ts';
import { podLifecycleWorkflowId, poolDeletionWorkflowId, SEARCH_ATTRIBUTES } from '../../src/temporal/names.ts';

describe('Temporal names', () => {
  it('builds the workflow IDs of the design', () => {
    expect(podLifecycleWorkflowId('default', 'web-0')).toBe('pod-ip/default/web-0');
    expect(poolDeletionWorkflowId('pool-a')).toBe('pool-deletion/pool-a');
  });

  it('fits the dev server SQLite visibility slots (10 Keyword, 3 KeywordList)', () => {
    const byType = Object.groupBy(SEARCH_ATTRIBUTES, (key) => key.type);
    expect(byType.KEYWORD?.length ?? 0).toBeLessThanOrEqual(10);
    expect(byType.KEYWORD_LIST?.length ?? 0).toBeLessThanOrEqual(3);
  });

  it('registers every attribute on the dev server command line', () => {
    expect(devServerSearchAttributeArgs()).toEqual([
      '--search-attribute', 'TidepoolPod=Keyword',
      '--search-attribute', 'TidepoolPodUID=Keyword',
      '--search-attribute', 'TidepoolNode=Keyword',
      '--search-attribute', 'TidepoolIPs=KeywordList',
      '--search-attribute', 'TidepoolPools=KeywordList',
      '--search-attribute', 'TidepoolState=Keyword',
    ]);
  });
});
