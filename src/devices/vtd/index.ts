export * from './regs.js';
export * from './faults.js';
export * from './device.js';
