import type { Rule } from '../../types.js';
import { blockingIoInAsync } from './blocking_io_in_async.js';
import { unnecessaryListAllocation } from './unnecessary_list_allocation.js';
import { syncSleepInAsync } from './sync_sleep_in_async.js';
import { stringConcatInLoop } from './string_concat_in_loop.js';
import { missingToThread } from './missing_to_thread.js';
import { redundantDataCopies } from './redundant_data_copies.js';
import { syncDbInAsync } from './sync_db_in_async.js';

export const runtimeRules: Rule[] = [
  blockingIoInAsync, unnecessaryListAllocation, syncSleepInAsync, stringConcatInLoop, missingToThread, redundantDataCopies, syncDbInAsync,
];
