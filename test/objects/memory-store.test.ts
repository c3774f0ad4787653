// The in-memory test double passes the same store conformance suite as the
// POSIX directory: the ObjectStore seam is an interface with two
// implementations, not a directory with an interface drawn around it.

import { MemoryStore } from './memory-store.ts';
import { defineStoreConformance } from './store-conformance.ts';

defineStoreConformance('memory (test double)', {
  open: async () => ({ store: new MemoryStore(), cleanup: async () => undefined }),
});
