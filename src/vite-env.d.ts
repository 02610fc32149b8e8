/// <reference types="vite/client" />

declare module 'virtual:dewgrid-trust' {
  const trust: import('./protocol/api.ts').TrustConfig;
  export default trust;
}
