// The Keep process's entry point (bundled by launch.ts). The sallyport is fd 3.
// The code-generation wall is up before this runs (launch.ts: it heads every file of the bundle);
// raising it again here is a no-op that keeps it up where the entry runs unbundled.
import { closeCodeGeneration } from './codegen-wall.ts';
import { runWorkload, useOptimisingTier } from '../../runtime/index.ts';
import { startKeep } from './keep.ts';

closeCodeGeneration();
startKeep(runWorkload);
// Now: after the built-ins the Keep needs to start (node:net for its pipe, node:stream) have loaded
// from Node's code cache, and before anything in this process compiles wasm (the host's first
// message is read on a later turn of the event loop; a Steward's HTTP client may compile wasm).
useOptimisingTier();
