/**
 * `dewgrid`: the project owner's client library. Publish batches of WebAssembly tasks from code,
 * follow their results as devices agree on them, read their status, cancel them.
 * docs/client.md describes it; the `dewgrid` CLI is a thin layer over it.
 */
export { Project, Batch, TaskResult, DEFAULT_SERVER, DEFAULT_DATA_DIR, DEFAULT_LIMITS, DEFAULT_EXPIRY_MS } from './project.ts';
export type { PublishSpec, PublishOptions, PublishProgress, BatchEvent, EventOptions, ConnectOptions } from './project.ts';
export type { TaskInput, Data } from './build.ts';
export { serverInfo } from './http.ts';
export { DewgridError, ServerUnreachableError, NotADewgridServerError, ServerRefusedError, BadAnswerError } from './errors.ts';
export { FINAL_STATES, TASK_STATES, isFinal, succeeded } from '../src/protocol/index.ts';
export type { BatchStatus, CancelResult, Engine, OwnerScope, QuorumView, ServerInfo, TaskState, TaskResultView } from '../src/protocol/index.ts';
