// Real PostgreSQL servers for tests: the same harness bench-wal uses.
export * from '../../src/cli/postgres-lab.ts';
