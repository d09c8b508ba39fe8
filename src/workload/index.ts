export * from './virtio-iommu-replay.js';
