/**
 * The worker entry: piscina loads this file once per thread, and each thread makes one batch
 * runner from the setup it was given (see batch.ts).
 */
import { workerData } from 'piscina';
import { createBatchRunner } from './batch.js';
import type { WorkerSetup } from './protocol.js';

export default createBatchRunner(workerData as WorkerSetup & { timings?: boolean });
