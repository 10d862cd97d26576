export * from './errors.js';
export * from './store/store.js';
