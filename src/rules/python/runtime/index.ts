import type { Rule } from '../../types.js';
import { blockingIoInAsync } from './blocking_io_in_async.js';
import { syncSleepInAsync } from './sync_sleep_in_async.js';

export const runtimeRules: Rule[] = [blockingIoInAsync, syncSleepInAsync];
