// The identities of link-runner's two ends, for the certificates of its
// --pki directory: region 'a' sends, region 'b' receives.

/** Pass to createDevPki to make a --pki directory for link-runner. */
export const RUNNER_CERTS = {
  a: { federation: 'netbench', region: 'a', node: 'source' },
  b: { federation: 'netbench', region: 'b', node: 'sink' },
};
