// A module load hook (module.register) that hands the project's .ts files
// on as format "module" JavaScript, types stripped the way Node strips them
// (whitespace in place of types, so line and column numbers stay). Node's
// own type stripping happens after the load hooks, and jazzer's ESM
// instrumentation only touches format "module", so without this hook no
// project code would get coverage counters. Registered by fuzz/preload.ts.
// Also resolves the jazzer CLI's name for a .ts target: it appends ".js" to
// any fuzz target path not ending in .js/.mjs/.cjs (core/dist/utils.js).

import { stripTypeScriptTypes } from 'node:module';

/** What a load hook returns (the subset used here). */
interface LoadResult {
  format?: string | null;
  source?: string | ArrayBuffer | Uint8Array | null;
  shortCircuit?: boolean;
}

/** What a resolve hook returns (the subset used here). */
interface ResolveResult {
  url: string;
  format?: string | null;
  shortCircuit?: boolean;
}

/** Node's resolve hook: `<target>.ts.js` names `<target>.ts`. */
export async function resolve(specifier: string, context: object, nextResolve: (specifier: string, context: object) => Promise<ResolveResult>): Promise<ResolveResult> {
  if (specifier.startsWith('file://') && specifier.endsWith('.ts.js')) return nextResolve(specifier.slice(0, -'.js'.length), context);
  return nextResolve(specifier, context);
}

/** Node's load hook: TypeScript modules become JavaScript modules. */
export async function load(url: string, context: object, nextLoad: (url: string, context: object) => Promise<LoadResult>): Promise<LoadResult> {
  const result = await nextLoad(url, context);
  if (result.format !== 'module-typescript' || result.source == null) return result;
  const text = typeof result.source === 'string' ? result.source : Buffer.from(result.source as Uint8Array).toString('utf8');
  return { ...result, format: 'module', source: stripTypeScriptTypes(text, { mode: 'strip' }) };
}
