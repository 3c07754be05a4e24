export { podIPLifecycle } from './pod-ip-lifecycle.ts';
