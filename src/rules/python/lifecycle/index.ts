import type { Rule } from '../../types.js';
import { enginePerRequest } from './engine_per_request.js';
import { errorPathLeak } from './error_path_leak.js';
import { factoryVsInjection } from './factory_vs_injection.js';
import { missingCleanup } from './missing_cleanup.js';
import { poolConfiguration } from './pool_configuration.js';
import { resourceScopeMismatch } from './resource_scope_mismatch.js';
import { sharedSession } from './shared_session.js';
import { scopedSessionNotRemoved } from './scoped_session_not_removed.js';
import { concurrentSession } from './concurrent_session.js';
import { streamingResourceHolding } from './streaming_resource_holding.js';

export const lifecycleRules: Rule[] = [
  resourceScopeMismatch, streamingResourceHolding, missingCleanup, poolConfiguration, errorPathLeak, factoryVsInjection, enginePerRequest, sharedSession, concurrentSession, scopedSessionNotRemoved,
];
