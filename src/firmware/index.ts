export * from './errors.js';
export * from './acpi.js';
export * from './machine.js';
export * from './viot.js';
export * from './dmar.js';
export * from './iort.js';
export * from './devicetree.js';
export * from './resolve.js';
