/** `npm run bench`: every benchmark, printed; the figures go into docs/benchmarks.md by hand, with the machine. */
import { cpus, totalmem } from 'node:os';
import { benchSyscallSpeed, benchWasmSpeed, printSpeed } from './wasm-speed.ts';
import { benchServerThroughput, printServerThroughput } from './server-throughput.ts';
import { benchOfflineStart, printOfflineStart } from './offline-start.ts';
import { benchStartLatency, printStartLatency } from './start-latency.ts';

console.log(`Dewgrid benchmarks — node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB`);
printSpeed(await benchWasmSpeed());
printServerThroughput(await benchServerThroughput());
printOfflineStart(await benchOfflineStart());
printStartLatency(await benchStartLatency());
printSpeed(await benchSyscallSpeed());
