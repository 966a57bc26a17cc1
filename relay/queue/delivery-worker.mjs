// Entry of the delivery worker thread (relay/queue/deliverer.ts). A worker thread does not inherit the TypeScript
// loader the relay runs with (tsx), so this JavaScript file registers it, then loads the worker itself.
import { register } from 'tsx/esm/api';

register();
await import('./delivery-worker.ts');
