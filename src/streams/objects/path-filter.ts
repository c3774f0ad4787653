// Which part of a tree one objects stream covers. A sharded stream splits
// one tree into sub-streams by top-level directory; each sub-stream's
// source sends, and its sink reports and accepts, only its own paths. The
// filter must be closed under descent: when it leaves a path out it leaves
// out everything below it (a scan does not descend into what it left out).

/** True for relative paths ('/'-separated) that belong to a stream; absent means all. */
export type PathFilter = (relativePath: string) => boolean;
