// Certificate rotation without dropping links. The CA, certificate and key
// files are polled (stat, following symlinks: a Kubernetes Secret volume
// swaps its ..data symlink atomically, which changes the inode seen here);
// when one changes, the three are read again, checked, and handed to the
// owner (server.setSecureContext for the acceptor; new dials read
// `current`). Links already up keep their TLS sessions. A bad new set
// (unreadable, key not matching the certificate, another identity) is
// reported once and the old material stays.

import { stat, readFile } from 'node:fs/promises';
import tls from 'node:tls';
import type { TlsMaterial } from '../config/tls-files.ts';

/** How often the files are checked for a change, ms. */
export const CERT_RELOAD_INTERVAL_MS = 5_000;

/** Paths of the three PEM files. */
export interface CertificateFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
}

/** Options of a reloader. */
export interface CertificateReloaderOptions {
  files: CertificateFiles;
  /** The material read at start. */
  initial: TlsMaterial;
  /** Extra check of new material (e.g. it still names this agent): a problem, or null to accept. */
  check(material: TlsMaterial): string | null;
  /** New material was accepted and is `current` now. */
  onReload(material: TlsMaterial): void;
  /** New files were found but refused; the old material stays. */
  onRejected(reason: string): void;
  intervalMs?: number;
}

/** Keeps this agent's TLS material current with its files. */
export class CertificateReloader {
  private material: TlsMaterial;
  private readonly options: CertificateReloaderOptions;
  private readonly timer: NodeJS.Timeout;
  /** Fingerprint of the files last loaded or last refused (so a bad set is reported once). */
  private seen = '';
  private polling = false;

  constructor(options: CertificateReloaderOptions) {
    this.options = options;
    this.material = options.initial;
    this.timer = setInterval(() => void this.poll(), options.intervalMs ?? CERT_RELOAD_INTERVAL_MS);
    this.timer.unref();
  }

  /** Take the files' current fingerprint as the loaded one (call once after reading the initial material). */
  async start(): Promise<void> {
    this.seen = await this.fingerprint().catch(() => '');
  }

  /** The material to use now. */
  get current(): TlsMaterial {
    return this.material;
  }

  /** Check the files once (the timer calls this; tests may too). */
  async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const print = await this.fingerprint().catch((err: Error) => `unreadable: ${err.message}`);
      if (print === this.seen) return;
      this.seen = print;
      const next = await this.load();
      if (typeof next === 'string') return this.options.onRejected(next);
      this.material = next;
      this.options.onReload(next);
    } finally {
      this.polling = false;
    }
  }

  /** Stop polling. */
  close(): void {
    clearInterval(this.timer);
  }

  // Read and check the three files; a sentence saying what is wrong otherwise.
  private async load(): Promise<TlsMaterial | string> {
    const { caFile, certFile, keyFile } = this.options.files;
    let material: TlsMaterial;
    try {
      const [ca, cert, key] = await Promise.all([readFile(caFile), readFile(certFile), readFile(keyFile)]);
      material = { ca, cert, key };
    } catch (err) {
      return `read new certificate files: ${(err as Error).message}`;
    }
    // createSecureContext parses all three and fails when the key does not match the certificate.
    try {
      tls.createSecureContext(material);
    } catch (err) {
      return `new certificate files do not form a usable TLS identity: ${(err as Error).message}`;
    }
    return this.options.check(material) ?? material;
  }

  private async fingerprint(): Promise<string> {
    const { caFile, certFile, keyFile } = this.options.files;
    const stats = await Promise.all([caFile, certFile, keyFile].map((f) => stat(f)));
    return stats.map((s) => `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}`).join('|');
  }
}
