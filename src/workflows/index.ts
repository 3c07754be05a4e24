export { podIPLifecycle } from './pod-ip-lifecycle.ts';
export { gcSweep } from './gc-sweep.ts';
export { poolDeletion } from './pool-deletion.ts';
export { runtimeGc } from './runtime-gc.ts';
