export * from './catalog.js';
export * from './qemu-log.js';
