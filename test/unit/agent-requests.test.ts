import { describe, expect, it } from 'vitest';
import { agentRequestProblem } from '../../src/agent/requests.ts';
import { AGENT_PATHS } from '../../src/contract/agent-api.ts';

const attachment = { containerID: 'c0ffee', interface: 'eth0', podNamespace: 'default', podName: 'web-0', podUID: 'uid-1' };
const add = { ...attachment, netns: '/var/run/netns/cni-1', defaultPools: { ipv4: [], ipv6: [] } };
const gc = { network: 'underlay', validAttachments: [{ containerID: 'c0ffee', interface: 'eth0' }] };

describe('agentRequestProblem', () => {
  it('takes an ADD with the network and node the configuration names', () => {
    expect(agentRequestProblem(AGENT_PATHS.ADD, { ...add, network: 'underlay', node: 'node-1' })).toBeUndefined();
    expect(agentRequestProblem(AGENT_PATHS.ADD, { ...add, network: '-x' })).toMatch(/^"network" "-x" has invalid characters/);
    expect(agentRequestProblem(AGENT_PATHS.ADD, { ...add, node: 'Node_1' })).toMatch(/^"node" "Node_1" is not a Kubernetes node name/);
  });

  it('takes a GC naming its network and the valid attachments, and refuses one that does not', () => {
    expect(agentRequestProblem(AGENT_PATHS.GC, gc)).toBeUndefined();
    expect(agentRequestProblem(AGENT_PATHS.GC, { ...gc, node: 'node-1', validAttachments: [] })).toBeUndefined();
    expect(agentRequestProblem(AGENT_PATHS.GC, { validAttachments: [] })).toBe('"network" must be a string, got nothing');
    expect(agentRequestProblem(AGENT_PATHS.GC, { network: 'underlay' })).toBe('"validAttachments" must be a list, got nothing');
    expect(agentRequestProblem(AGENT_PATHS.GC, { ...gc, validAttachments: [{ containerID: 'c0ffee', interface: 'a:b' }] })).toBe(
      'validAttachments[0]: "interface" "a:b" contains "/", ":" or whitespace',
    );
    expect(agentRequestProblem(AGENT_PATHS.GC, { ...gc, validAttachments: ['c0ffee/eth0'] })).toBe('validAttachments[0]: must be an object, got "c0ffee/eth0"');
  });

  it('takes STATUS with any object body, and nothing else', () => {
    expect(agentRequestProblem(AGENT_PATHS.STATUS, {})).toBeUndefined();
    expect(agentRequestProblem(AGENT_PATHS.STATUS, [])).toBe('the request body must be a JSON object, got []');
  });
});
