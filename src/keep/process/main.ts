// The Keep process's entry point (bundled by launch.ts). The sallyport is fd 3.
// The code-generation wall goes up first: everything else is imported after it.
import { closeCodeGeneration } from './codegen-wall.ts';

closeCodeGeneration();
const [{ runWorkload, useOptimisingTier }, { startKeep }] = await Promise.all([import('../../runtime/index.ts'), import('./keep.ts')]);
startKeep(runWorkload);
// Now: after the built-ins the Keep needs to start (node:net for its pipe, node:stream) have loaded
// from Node's code cache, and before anything in this process compiles wasm (the host's first
// message is read on a later turn of the event loop; a Steward's HTTP client may compile wasm).
useOptimisingTier();
