// The top of a two-region agent config file (eu-west here, us-east the peer)
// for config tests; each test appends its streams.

/** federation, region, tls and both regions' endpoints; `extraUsEast` adds endpoints to us-east. */
export function twoRegionHead(extraUsEast: string[] = []): string {
  const usEast = ['"127.0.0.1:7401"', ...extraUsEast.map((e) => JSON.stringify(e))].join(', ');
  return `
federation: demo
region: eu-west
tls: { ca: tls/ca.crt, cert: tls/tls.crt, key: tls/tls.key }
regions:
  - name: eu-west
    endpoints: ["127.0.0.1:7400"]
  - name: us-east
    endpoints: [${usEast}]
`;
}
