// Terminal progress: one line rewritten in place on a TTY, a line every few
// seconds otherwise (logs, CI).

/** Bytes as KiB/MiB/GiB. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** Bytes per second as MB/s (decimal, as network rates are quoted). */
export function formatRate(bytesPerSecond: number): string {
  return `${(bytesPerSecond / 1e6).toFixed(1)} MB/s`;
}

/** Minimum time between lines when not on a TTY. */
const PLAIN_INTERVAL_MS = 5_000;

/** A progress line. */
export class ProgressLine {
  private readonly out: NodeJS.WritableStream & { isTTY?: boolean };
  private lastPlain = 0;
  private last = '';

  constructor(out: NodeJS.WritableStream) {
    this.out = out;
  }

  /** Show text as the current progress. */
  update(text: string): void {
    this.last = text;
    if (this.out.isTTY) {
      this.out.write(`\r\x1b[K${text}`);
    } else if (performance.now() - this.lastPlain >= PLAIN_INTERVAL_MS) {
      this.lastPlain = performance.now();
      this.out.write(`${text}\n`);
    }
  }

  /** End the progress line. */
  done(): void {
    if (this.out.isTTY) this.out.write('\n');
    else if (this.last) this.out.write(`${this.last}\n`);
  }
}
