export * from './addr.js';
export * from './errors.js';
export * from './phys-memory.js';
export * from './page-allocator.js';
