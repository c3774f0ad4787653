// `dwcp crds`: prints the DWCPFederation and DWCPStream CRDs (generated from
// the config schema) as multi-document YAML, or with --out writes one file
// per CRD into a directory (how manifests/base/crds/ is regenerated).

import { parseArgs } from 'node:util';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crdFileName, crdYaml, crdsYaml, dwcpCrds } from '../k8s/crd-generate.ts';

/** Runs `dwcp crds [--out DIR]`; returns the exit code. */
export async function crdsCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { out: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    process.stdout.write('Usage: dwcp crds [--out DIR]\n\nPrints the DWCPFederation and DWCPStream CRDs as YAML; --out DIR writes\n<plural>.dwcp.io.yaml files instead (manifests/base/crds).\n');
    return 0;
  }
  if (values.out === undefined) {
    process.stdout.write(crdsYaml());
    return 0;
  }
  for (const crd of dwcpCrds()) {
    const file = join(values.out, crdFileName(crd));
    await writeFile(file, crdYaml(crd));
    process.stdout.write(`wrote ${file}\n`);
  }
  return 0;
}
