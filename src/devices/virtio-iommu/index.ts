export * from './wire.js';
export * from './device.js';
