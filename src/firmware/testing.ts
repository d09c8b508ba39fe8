/** Fixture machines for firmware tests. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseMachine, type MachineDescription } from './machine.js';

export const FIXTURE_MACHINES = ['seed-004', 'q35-vtd', 'arm-smmuv3', 'q35-virtio-iommu', 'q35-intel-iommu-qemu', 'vtd-bridges'] as const;

export function fixtureMachine(name: string): MachineDescription {
  const path = fileURLToPath(new URL(`../../../fixtures/machines/${name}.json`, import.meta.url));
  return parseMachine(JSON.parse(readFileSync(path, 'utf8')));
}
