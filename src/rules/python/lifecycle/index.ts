import type { Rule } from '../../types.js';
import { errorPathLeak } from './error_path_leak.js';
import { missingCleanup } from './missing_cleanup.js';
import { poolConfiguration } from './pool_configuration.js';

export const lifecycleRules: Rule[] = [missingCleanup, poolConfiguration, errorPathLeak];
