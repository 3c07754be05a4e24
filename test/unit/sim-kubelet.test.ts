import { describe, expect, it } from 'vitest';
import { errorKind } from '../../sim/kubelet.ts';

describe('errorKind', () => {
  it('drops pod names and klog headers, keeps the rest', () => {
    expect(errorKind('Tidepool did not allocate an IP for pod bench-1/app-7c9-x2 within 25 s')).toBe('Tidepool did not allocate an IP for pod <pod> within 25 s');
    expect(errorKind('I1122 22:26:14.526031   12841 leaderelection.go:250] attempting to acquire leader lease kube-system/whereabouts...')).toBe(
      'attempting to acquire leader lease kube-system/whereabouts...',
    );
    expect(errorKind('no IP addresses available in range set: 10.241.0.1-10.241.0.10')).toBe('no IP addresses available in range set: 10.241.0.1-10.241.0.10');
  });
});
