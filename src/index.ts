/**
 * viommu: virtual IOMMUs in TypeScript. The package root exports the contracts of DESIGN.md as they exist.
 */
export { ViommuError, hex } from './errors.js';
export * from './mem/index.js';
export * from './layout/index.js';
export * from './pgtable/index.js';
export * from './virtio/index.js';
export * from './devices/virtio-iommu/index.js';
export { IntervalMap, type Interval } from './devices/common/interval-map.js';
export * from './trace/index.js';
export * from './workload/index.js';
export * from './firmware/index.js';
export * from './devices/vtd/index.js';
