import type { Rule } from '../../types.js';
import { poolConfiguration } from './pool_configuration.js';

export const lifecycleRules: Rule[] = [poolConfiguration];
