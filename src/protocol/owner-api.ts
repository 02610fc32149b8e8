/**
 * What the task server answers its project owner (the CLI, the client library, scripts), as
 * schemas the library checks every answer against: an answer that does not parse is an error
 * naming the field, never a value cast into shape. Objects are not strict here: a newer server may
 * add fields an older library does not know.
 */
import * as v from 'valibot';
import {
  KEYSET_REFUSALS,
  REFUSALS,
  TASK_STATES,
  type BatchResults,
  type BatchStatus,
  type JsonBytes,
  type QuorumView,
  type TaskResultView,
  type TaskState,
  type Validation,
} from './schema.ts';

const Count = v.pipe(v.number(), v.integer(), v.minValue(0));
const Millis = Count;

export const JsonBytesSchema: v.GenericSchema<JsonBytes> = v.union([v.string(), v.object({ base64: v.string() })]);

const ValidationSchema: v.GenericSchema<Validation> = v.picklist(['pending', 'valid', 'invalid', 'error', 'void']);

export const QuorumViewSchema: v.GenericSchema<QuorumView> = v.object({
  needed: Count,
  limit: Count,
  agreeing: Count,
  outputs: Count,
  results: v.array(v.object({ deviceId: v.string(), digest: v.nullable(v.string()), validation: ValidationSchema, credit: v.number(), at: Millis })),
});

const RefusalView = v.object({ reason: v.picklist(REFUSALS), detail: v.string(), deviceId: v.string(), at: Millis });

export const TaskResultViewSchema: v.GenericSchema<TaskResultView> = v.object({
  taskId: v.string(),
  name: v.string(),
  state: v.picklist(TASK_STATES),
  args: v.array(v.string()),
  exitCode: v.nullable(v.pipe(v.number(), v.integer())),
  stdout: v.nullable(JsonBytesSchema),
  stderr: v.nullable(JsonBytesSchema),
  files: v.array(v.object({ path: v.string(), data: JsonBytesSchema })),
  truncated: v.nullable(v.object({ stdout: v.boolean(), stderr: v.boolean(), files: v.boolean() })),
  error: v.nullable(v.object({ code: v.string(), message: v.string() })),
  refusals: v.array(RefusalView),
  results: Count,
  redundancy: Count,
  quorum: QuorumViewSchema,
});

export const BatchResultsSchema: v.GenericSchema<BatchResults> = v.object({ batchId: v.string(), name: v.string(), tasks: v.array(TaskResultViewSchema) });

/** Counts per state: every state present, whatever order. */
const CountsSchema: v.GenericSchema<Record<string, number>, Record<TaskState, number>> = v.pipe(
  v.record(v.string(), Count),
  v.check((counts) => TASK_STATES.every((s) => s in counts), `must count every state (${TASK_STATES.join(', ')})`),
  v.transform((counts) => counts as Record<TaskState, number>),
);

export const BatchStatusSchema: v.GenericSchema<unknown, BatchStatus> = v.object({
  batchId: v.string(),
  name: v.string(),
  createdAt: Millis,
  counts: CountsSchema,
  refusals: v.array(v.object({ taskId: v.string(), reason: v.picklist(REFUSALS), detail: v.string(), deviceId: v.string(), at: Millis, newDevice: v.boolean() })),
  failures: v.array(v.object({ taskId: v.string(), deviceId: v.string(), code: v.string(), message: v.string(), at: Millis, newDevice: v.boolean() })),
  reports: v.object({ errors: Count, refusals: Count, deviceFailures: Count, fromNewDevices: Count, awaitingTrust: Count }),
  adaptive: v.boolean(),
  quorum: v.object({ awaiting: Count, disputed: Count }),
});

export const BatchStatusListSchema = v.array(BatchStatusSchema);

/** `GET /api/info`: what this server is. Anything else at that address is not a Dewgrid task server. */
export interface ServerInfo {
  service: 'dewgrid';
  /** The protocol version (the manifest's `v`). */
  protocol: number;
  /** The project the server's trust.json names, or null before it has one. */
  projectName: string | null;
  /** The keyset version it holds, 0 for none. */
  keysetVersion: number;
  /** Whether this is `npm start`'s demo, which publishes the next picture when a donor asks. */
  demo: boolean;
}

export const ServerInfoSchema: v.GenericSchema<ServerInfo> = v.object({
  service: v.literal('dewgrid'),
  protocol: Count,
  projectName: v.nullable(v.string()),
  keysetVersion: Count,
  demo: v.boolean(),
});

/**
 * One event of `GET /api/batches/:id/events` (Server-Sent Events, `event: task`, its `id:` the
 * event's sequence number): a task changed state. `running` when a device leased it; in a final
 * state (FINAL_STATES) `result` is the task's whole view, as `GET .../results` gives it.
 */
export interface TaskEvent {
  taskId: string;
  state: TaskState;
  result: TaskResultView | null;
}

export const TaskEventSchema: v.GenericSchema<TaskEvent> = v.object({
  taskId: v.string(),
  state: v.picklist(TASK_STATES),
  result: v.nullable(TaskResultViewSchema),
});

/** `event: end`: every task of the batch has ended; the server closes the stream after it. */
export interface BatchEndEvent {
  batchId: string;
  counts: Record<TaskState, number>;
}

export const BatchEndEventSchema: v.GenericSchema<unknown, BatchEndEvent> = v.object({ batchId: v.string(), counts: CountsSchema });

/** `POST /api/batches/:id/cancel`: how many tasks it ended, and the batch after. */
export interface CancelResult {
  batchId: string;
  cancelled: number;
  status: BatchStatus;
}

export const CancelResultSchema: v.GenericSchema<unknown, CancelResult> = v.object({ batchId: v.string(), cancelled: Count, status: BatchStatusSchema });

/** `GET /api/keyset/refusals`: keysets devices refused; `newDevice`: the device had not earned trust when it reported. */
export const KeysetRefusalListSchema = v.array(
  v.object({ deviceId: v.string(), version: Count, reason: v.picklist(KEYSET_REFUSALS), detail: v.string(), at: Millis, newDevice: v.boolean() }),
);

/** `GET /api/demo` (`npm start` only): the picture being computed, and whether a donor may ask for the next. */
export interface DemoState {
  /** 1 for the first picture `npm start` published, and so on. */
  number: number;
  /** The picture's name (`Seahorse valley`). */
  name: string;
  batchId: string;
  image: { width: number; height: number; tile: number };
  tasks: number;
  /** Tasks that ended (done or otherwise). */
  finished: number;
  /** The picture is finished, so the next may be asked for (POST /api/demo/next). */
  canAskForNext: boolean;
}

export const DemoStateSchema: v.GenericSchema<DemoState> = v.object({
  number: Count,
  name: v.string(),
  batchId: v.string(),
  image: v.object({ width: Count, height: Count, tile: Count }),
  tasks: Count,
  finished: Count,
  canAskForNext: v.boolean(),
});
