// File mode of live configuration: the agent's config file is watched (its
// directory, since editors and ConfigMap mounts replace the file by rename)
// and read again on SIGHUP; each changed text that loads is handed on as a
// new validated Config, each that does not is reported with its field
// paths and the running config stays.

import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { Config } from './config.ts';
import { loadConfig, type ConfigOptions } from './load-config.ts';

/** Quiet time after the last change event before the file is read, ms (an editor's save is several events). */
export const CONFIG_WATCH_DEBOUNCE_MS = 200;

/** Options of a config file watch. */
export interface ConfigFileWatchOptions {
  path: string;
  /** Passed to loadConfig. */
  load?: ConfigOptions;
  /** A changed file that loaded. */
  onConfig(config: Config): Promise<void> | void;
  /** A changed file that did not load (a ConfigError lists every field path). */
  onInvalid(err: Error): void;
  debounceMs?: number;
  /** Where SIGHUP comes from (the process); each one reads the file again. Default none. */
  signals?: SignalSource;
}

/** Something that emits SIGHUP (process, or a test's EventEmitter). */
export interface SignalSource {
  on(event: 'SIGHUP', listener: () => void): unknown;
  off(event: 'SIGHUP', listener: () => void): unknown;
}

/** Watches a config file; reload() reads it now (SIGHUP). */
export class ConfigFileWatch {
  private readonly options: ConfigFileWatchOptions;
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** Text of the last file handed on (or the one the agent started with): the same text again is no change. */
  private lastText: string | null = null;
  private reading: Promise<void> = Promise.resolve();
  private readonly onHangup = (): void => void this.reload();

  constructor(options: ConfigFileWatchOptions) {
    this.options = options;
  }

  /** Start watching; the file as it is now counts as applied. */
  async start(): Promise<void> {
    this.lastText = await readFile(this.options.path, 'utf8').catch(() => null);
    const name = basename(this.options.path);
    this.watcher = watch(dirname(this.options.path), { persistent: false }, (_event, file) => {
      if (file === null || file === name) this.schedule();
    });
    this.watcher.on('error', (err) => this.options.onInvalid(new Error(`watch ${this.options.path}: ${err.message}`)));
    this.options.signals?.on('SIGHUP', this.onHangup);
  }

  /** Read the file now (SIGHUP), even when its text did not change. */
  reload(): Promise<void> {
    return this.read(true);
  }

  /** Stop watching. */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.watcher?.close();
    this.watcher = null;
    this.options.signals?.off('SIGHUP', this.onHangup);
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.read(false), this.options.debounceMs ?? CONFIG_WATCH_DEBOUNCE_MS);
    this.timer.unref();
  }

  // One read at a time, in order; a failure is reported, never thrown.
  private read(force: boolean): Promise<void> {
    this.reading = this.reading.then(async () => {
      const text = await readFile(this.options.path, 'utf8').catch(() => null);
      if (!force && (text === null || text === this.lastText)) return;
      let config: Config;
      try {
        config = await loadConfig(this.options.path, this.options.load);
      } catch (err) {
        this.options.onInvalid(err as Error);
        return;
      }
      this.lastText = text;
      try {
        await this.options.onConfig(config);
      } catch (err) {
        this.options.onInvalid(err as Error);
      }
    });
    return this.reading;
  }
}
