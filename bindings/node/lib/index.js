'use strict';
const { Cache, NexxoCacheError, nativeVersion } = require('./cache');
const { CacheManager, getCacheManager, humanSize } = require('./manager');

/** The built-in categories. */
const CATEGORIES = Object.freeze(['parse', 'transform', 'bundle', 'optimize', 'meta']);

module.exports = { Cache, CacheManager, getCacheManager, NexxoCacheError, nativeVersion, humanSize, CATEGORIES };
