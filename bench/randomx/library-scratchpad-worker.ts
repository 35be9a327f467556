/**
 * The production RandomX worker with the scratchpad swap of library-memory.ts turned off:
 * every VM keeps the scratchpad librandomx allocated. For bench/randomx/scratchpad.ts only.
 */
import * as libraryMemory from '../../src/randomx/library-memory';

// worker.js calls it through the module's exports object, so this reaches its calls.
(libraryMemory as { moveScratchpadToHugePage: unknown }).moveScratchpadToHugePage = () => undefined;

// eslint-disable-next-line @typescript-eslint/no-require-imports
module.exports = require('../../src/randomx/worker');
