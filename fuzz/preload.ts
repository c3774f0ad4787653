// Loaded with `node --import` into every jazzer process that fuzz/run.ts
// starts, before jazzer itself:
//   1. registers the type-stripping load hook first, so that jazzer's ESM
//      instrumentation hook (registered later, hence run earlier, and only
//      instrumenting format "module") receives our .ts files as plain
//      JavaScript and adds coverage counters to them;
//   2. where fuzz/jazzer-compat.ts prepared a patched addon copy, loads it
//      and puts it in the CommonJS cache under the prebuilt's path, so
//      @jazzer.js/fuzzer's require() of the prebuild returns it.

import { createRequire, register } from 'node:module';
import { PATCHED_ADDON_ENV, prebuiltAddonPath } from './jazzer-compat.ts';

register(new URL('./strip-types-loader.ts', import.meta.url));

const patched = process.env[PATCHED_ADDON_ENV];
if (patched) {
  const require = createRequire(import.meta.url);
  const Module = require('node:module') as { new (id: string): NodeJS.Module; _cache: Record<string, NodeJS.Module> };
  const prebuilt = prebuiltAddonPath();
  const addon = new Module(prebuilt);
  addon.filename = prebuilt;
  process.dlopen(addon, patched);
  addon.loaded = true;
  Module._cache[prebuilt] = addon;
}
