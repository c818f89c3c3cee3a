// The Keep process's entry point (bundled by launch.ts). The sallyport is fd 3.
import { runWorkload } from '../../runtime/index.ts';
import { startKeep } from './keep.ts';

startKeep(runWorkload);
