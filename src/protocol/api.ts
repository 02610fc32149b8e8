/** HTTP endpoints of the task server. docs/protocol.md describes each. */
export const API = {
  work: '/api/work', // POST WorkRequest -> WorkResponse
  results: '/api/results', // POST ResultSubmission (JSON) or a binary result (RESULT_BODY_TYPE) -> { status: 'accepted' | 'duplicate' }
  refusals: '/api/refusals', // POST RefusalReport -> { status: 'recorded' }
  renew: '/api/leases/renew', // POST LeaseRenewal -> { expiresAt }
  blob: (sha256: string) => `/api/blobs/${sha256}`, // GET bytes, immutable
  missingBlobs: '/api/blobs/missing', // POST { hashes } -> { missing }
  blobBatch: '/api/blobs/batch', // POST BlobBatchRequest -> the blobs' bytes, one after another, in the order asked
  batches: '/api/batches', // GET -> BatchStatus[]; POST PublishRequest -> BatchStatus
  batch: (batchId: string) => `/api/batches/${batchId}`, // GET BatchStatus
  batchResults: (batchId: string) => `/api/batches/${batchId}/results`, // GET BatchResults (?tasks=ID,ID for some)
  batchEvents: (batchId: string) => `/api/batches/${batchId}/events`, // GET text/event-stream of TaskEvent (owner-api.ts)
  batchCancel: (batchId: string) => `/api/batches/${batchId}/cancel`, // POST {} -> CancelResult
  info: '/api/info', // GET ServerInfo: what this server is (the CLI checks it is talking to a Dewgrid server)
  demo: '/api/demo', // GET DemoState (npm start's demo only; 404 elsewhere)
  demoNext: '/api/demo/next', // POST {} -> DemoState: the next demo picture, once the current one is finished
  keyset: '/api/keyset', // GET SignedKeyset (ETag: its version); POST SignedKeyset -> { status, version, revokedTasks }
  keysetRefusals: '/api/keyset/refusals', // GET -> KeysetRefusalView[]
  device: (deviceId: string) => `/api/devices/${deviceId}`, // GET DeviceCredit
} as const;

/**
 * The client's trust roots: the project's root keys, which sign its keysets. Deploy configuration
 * compiled into the client's build (never from the task API); the server holds the same file to
 * check keysets it is given. `dewgrid keygen` writes it.
 */
export interface TrustConfig {
  projectName: string;
  /** keyId -> base64 ed25519 public key of a root */
  roots: Record<string, string>;
}

/** The guest folder a task preopens to have its files kept across cut-off runs (docs/protocol.md, "Checkpoints"). */
export const CHECKPOINT_DIR = '/checkpoint';
