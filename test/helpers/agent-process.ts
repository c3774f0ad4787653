// Agents as child processes for tests: the same runner the demo uses.
export { AgentProcess, sleep, waitFor } from '../../src/cli/agent-child.ts';
