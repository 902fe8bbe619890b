// The ES module entry (`import { getCacheManager } from 'nexxo-cache'`): the CommonJS
// module's exports, named. One implementation; both entries share its state (the
// manager's singletons, the loaded library).
import cjs from './index.js';

export const {
  Cache, CacheManager, getCacheManager, NexxoCacheError, nativeVersion, humanSize, CATEGORIES,
} = cjs;
export default cjs;
