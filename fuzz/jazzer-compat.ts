// Makes @jazzer.js/fuzzer's prebuilt linux-x64 addon loadable on hosts
// older than the one it was built on. The 4.0.0 prebuild needs glibc 2.38
// (__isoc23_strtol, __isoc23_strtoul) and libstdc++ 13
// (std::ios_base_library_init); Debian 12 has glibc 2.36 and libstdc++ 12,
// where loading it fails with "version `GLIBC_2.38' not found". Those three
// are the only newer symbols it uses (objdump -T), so instead of building
// jazzer from source (Rust + LLVM downloads) we:
//   1. build fuzz/jazzer-compat/compat.cc into a small shared library that
//      defines exactly those symbols under those version names, and
//   2. copy the addon and mark its two version needs weak (VER_FLG_WEAK in
//      .gnu.version_r), so the loader no longer insists that libc/libstdc++
//      themselves define them; the symbols then bind to the preloaded shim.
// Both land in node_modules/.cache/dwcp/jazzer-compat/; the installed
// package is never modified. Where the prebuild loads as is, nothing is done.

import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root. */
const REPO = fileURLToPath(new URL('..', import.meta.url));
/** Where the shim and the patched addon are cached. */
const CACHE_DIR = join(REPO, 'node_modules/.cache/dwcp/jazzer-compat');
/** Sources of the shim. */
const SHIM_SOURCE = fileURLToPath(new URL('./jazzer-compat/compat.cc', import.meta.url));
const SHIM_VERSION_SCRIPT = fileURLToPath(new URL('./jazzer-compat/compat.map', import.meta.url));
/** Version needs of the prebuild that the shim provides. */
const SHIMMED_VERSIONS = new Set(['GLIBC_2.38', 'GLIBCXX_3.4.32']);

/** ELF constants used by the patch (see elf(5)). */
const SHT_GNU_VERNEED = 0x6ffffffe;
const VER_FLG_WEAK = 0x2;

/** Environment variable through which fuzz/preload.ts learns the patched addon's path. */
export const PATCHED_ADDON_ENV = 'DWCP_FUZZ_JAZZER_ADDON';

/** The prebuilt addon @jazzer.js/fuzzer loads on this platform. */
export function prebuiltAddonPath(): string {
  const require = createRequire(import.meta.url);
  const fuzzerDir = dirname(require.resolve('@jazzer.js/fuzzer/package.json'));
  return join(fuzzerDir, 'prebuilds', `fuzzer-${process.platform}-${process.arch}.node`);
}

/**
 * Environment additions a jazzer child process needs on this host: none
 * where the prebuild loads as is, else LD_PRELOAD of the shim and the path
 * of the patched addon copy (built on first use). Throws naming what failed.
 */
export function jazzerEnv(): Record<string, string> {
  const prebuilt = prebuiltAddonPath();
  const probe = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(prebuilt)})`], { encoding: 'utf8' });
  if (probe.status === 0) return {};
  if (!/GLIBC_2\.38|GLIBCXX_3\.4\.32/.test(probe.stderr)) {
    throw new Error(`load jazzer addon ${prebuilt}: ${probe.stderr.trim().split('\n').find((l) => /Error/.test(l)) ?? probe.stderr.trim()}`);
  }
  mkdirSync(CACHE_DIR, { recursive: true });
  const shim = join(CACHE_DIR, 'libdwcp-jazzer-compat.so');
  if (isStale(shim, [SHIM_SOURCE, SHIM_VERSION_SCRIPT])) {
    try {
      execFileSync('g++', ['-shared', '-fPIC', '-O2', `-Wl,--version-script=${SHIM_VERSION_SCRIPT}`, '-o', shim, SHIM_SOURCE], { stdio: 'pipe' });
    } catch (err) {
      throw new Error(`build jazzer compat shim with g++: ${(err as { stderr?: Buffer }).stderr?.toString().trim() || (err as Error).message}`);
    }
  }
  const patched = join(CACHE_DIR, 'fuzzer.node');
  if (isStale(patched, [prebuilt])) {
    copyFileSync(prebuilt, patched);
    writeFileSync(patched, weakenVersionNeeds(readFileSync(patched), SHIMMED_VERSIONS));
  }
  return { LD_PRELOAD: shim, [PATCHED_ADDON_ENV]: patched };
}

// True when target is missing or older than any of its inputs.
function isStale(target: string, inputs: string[]): boolean {
  if (!existsSync(target)) return true;
  const built = statSync(target).mtimeMs;
  return inputs.some((input) => statSync(input).mtimeMs > built);
}

/**
 * Returns a copy of an ELF64 little-endian shared object in which each
 * version need named in versions is flagged VER_FLG_WEAK. Throws when one
 * of them is not found (a different prebuild: the shim would not fit).
 */
export function weakenVersionNeeds(elf: Buffer, versions: ReadonlySet<string>): Buffer {
  const out = Buffer.from(elf);
  if (out.readUInt32BE(0) !== 0x7f454c46 || out[4] !== 2 || out[5] !== 1) throw new Error('weaken version needs: not an ELF64 little-endian file');

  // Section headers: find .gnu.version_r and the string table it links to.
  const shoff = Number(out.readBigUInt64LE(0x28));
  const shentsize = out.readUInt16LE(0x3a);
  const shnum = out.readUInt16LE(0x3c);
  const section = (i: number) => {
    const at = shoff + i * shentsize;
    return { type: out.readUInt32LE(at + 4), offset: Number(out.readBigUInt64LE(at + 0x18)), link: out.readUInt32LE(at + 0x28), info: out.readUInt32LE(at + 0x2c) };
  };
  let verneed: ReturnType<typeof section> | undefined;
  for (let i = 0; i < shnum && !verneed; i++) if (section(i).type === SHT_GNU_VERNEED) verneed = section(i);
  if (!verneed) throw new Error('weaken version needs: no .gnu.version_r section');
  const strtab = section(verneed.link).offset;
  const name = (offset: number) => out.toString('latin1', strtab + offset, out.indexOf(0, strtab + offset));

  // Walk Elf64_Verneed entries (vn_cnt, vn_aux, vn_next) and their Elf64_Vernaux (vna_flags, vna_name, vna_next).
  const weakened = new Set<string>();
  let need = verneed.offset;
  for (let i = 0; i < verneed.info; i++) {
    let aux = need + out.readUInt32LE(need + 8);
    for (let j = 0; j < out.readUInt16LE(need + 2); j++) {
      const version = name(out.readUInt32LE(aux + 8));
      if (versions.has(version)) {
        out.writeUInt16LE(out.readUInt16LE(aux + 4) | VER_FLG_WEAK, aux + 4);
        weakened.add(version);
      }
      aux += out.readUInt32LE(aux + 12);
    }
    need += out.readUInt32LE(need + 12);
  }
  const missing = [...versions].filter((v) => !weakened.has(v));
  if (missing.length > 0) throw new Error(`weaken version needs: ${missing.join(', ')} not needed by this file`);
  return out;
}
