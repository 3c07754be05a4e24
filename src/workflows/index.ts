export { podIPLifecycle } from './pod-ip-lifecycle.ts';
export { gcSweep } from './gc-sweep.ts';
