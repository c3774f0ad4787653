/* Small deterministic PRNG (splitmix64): fast, seedable, good enough for
   loss and jitter draws; not for anything secret. */
#ifndef WANEM_RNG_H
#define WANEM_RNG_H
#include <stdint.h>

/* Next 64 random bits; advances *state. */
static inline uint64_t rng_next(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* Uniform double in [0, 1) from the top 53 bits. */
static inline double rng_unit(uint64_t *state) {
  return (double)(rng_next(state) >> 11) * (1.0 / 9007199254740992.0);
}
#endif
