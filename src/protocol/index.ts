export * from './schema.ts';
export * from './api.ts';
export * from './bytes.ts';
export * from './canonical-json.ts';
export * from './signing.ts';
export * from './verify.ts';
export * from './keyset.ts';
export * from './results.ts';
