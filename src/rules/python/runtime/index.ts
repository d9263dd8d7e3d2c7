import type { Rule } from '../../types.js';
import { blockingIoInAsync } from './blocking_io_in_async.js';
import { syncSleepInAsync } from './sync_sleep_in_async.js';
import { missingToThread } from './missing_to_thread.js';
import { syncDbInAsync } from './sync_db_in_async.js';

export const runtimeRules: Rule[] = [blockingIoInAsync, syncSleepInAsync, missingToThread, syncDbInAsync];
