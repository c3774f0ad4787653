// Helpers shared by the fuzz targets: the property check that turns a
// broken promise into a finding, and deterministic chunk splits derived
// from one input byte (so a seed is a real message plus a small header).

/** A property of the code under test did not hold: a real bug, never expected. */
export class PropertyViolation extends Error {
  override name = 'PropertyViolation';
}

/** Throws a PropertyViolation with message unless condition holds. */
export function check(condition: boolean, message: string): asserts condition {
  if (!condition) throw new PropertyViolation(message);
}

/**
 * Increasing cut points in (0, length) chosen by seed: seed 0 gives none
 * (one chunk), small seeds give byte-by-byte and short strides, others a
 * xorshift sequence of chunk sizes from 1 to 64 bytes.
 */
export function splitPoints(seed: number, length: number): number[] {
  const points: number[] = [];
  if (seed === 0) return points;
  let state = seed * 2654435761 >>> 0 || 1;
  for (let at = 0; ;) {
    let step: number;
    if (seed <= 8) step = seed;
    else {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      state >>>= 0;
      step = 1 + (state % 64);
    }
    at += step;
    if (at >= length) return points;
    points.push(at);
  }
}
