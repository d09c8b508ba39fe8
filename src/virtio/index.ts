export * from './constants.js';
export * from './virtqueue.js';
export * from './core.js';
export * from './mmio.js';
export * from './driver.js';
export * from './pci.js';
