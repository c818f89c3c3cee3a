// The Keep process's entry point (bundled by launch.ts). The sallyport is fd 3.
import { runWorkload, useOptimisingTier } from '../../runtime/index.ts';
import { startKeep } from './keep.ts';

// Now, before anything in this process compiles wasm (a Steward's HTTP client may), and after the
// built-ins this bundle imports have loaded from Node's code cache.
useOptimisingTier();
startKeep(runWorkload);
