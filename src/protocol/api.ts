/** HTTP endpoints of the task server. docs/protocol.md describes each. */
export const API = {
  work: '/api/work', // POST WorkRequest -> WorkResponse
  results: '/api/results', // POST ResultSubmission -> { status: 'accepted' | 'duplicate' }
  refusals: '/api/refusals', // POST RefusalReport -> { status: 'recorded' }
  renew: '/api/leases/renew', // POST LeaseRenewal -> { expiresAt }
  blob: (sha256: string) => `/api/blobs/${sha256}`, // GET bytes, immutable
  missingBlobs: '/api/blobs/missing', // POST { hashes } -> { missing }
  batches: '/api/batches', // GET -> BatchStatus[]; POST PublishRequest -> BatchStatus
  batch: (batchId: string) => `/api/batches/${batchId}`, // GET BatchStatus
  batchResults: (batchId: string) => `/api/batches/${batchId}/results`, // GET BatchResults
  trust: '/trust.json', // deploy configuration: the project keys the client pins
} as const;

/** The client's pinned trust roots, from deploy configuration (never from the task API). */
export interface TrustConfig {
  projectName: string;
  /** keyId -> base64 ed25519 public key */
  keys: Record<string, string>;
}

/** The guest folder a task preopens to have its files kept across cut-off runs (docs/protocol.md, "Checkpoints"). */
export const CHECKPOINT_DIR = '/checkpoint';
