// The Keep process's entry point (bundled by launch.ts). The sallyport is fd 3.
// The walls (wall.ts) are up before this runs: their source heads every file of the bundle. Raising
// them again here is a no-op that keeps them up where the entry runs unbundled (without the module
// wall, which needs the bundle's directory).
import { closeCodeGeneration, closeSignals, sealEngineFlags } from './wall.ts';
import { runWorkload, useOptimisingTier } from '../../runtime/index.ts';
import { startKeep } from './keep.ts';

closeCodeGeneration();
closeSignals();
const keep = startKeep(runWorkload);
// Now: after the built-ins the Keep needs to start (node:net for its pipe, node:stream) have loaded
// from Node's code cache, and before anything in this process compiles wasm (the host's first
// message is read on a later turn of the event loop; a Steward's HTTP client may compile wasm).
useOptimisingTier();
sealEngineFlags();
// After the event loop's first poll: a hello already in the pipe is handled first, and skips it.
setImmediate(() => void keep.warmUp());
