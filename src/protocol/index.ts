export * from './constants.js';
export * from './crc.js';
export * from './decoder.js';
export * from './messages.js';
