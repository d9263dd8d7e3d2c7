import type { Rule } from '../../types.js';
import { commitInLoop } from './commit_in_loop.js';
import { eventChannelConsistency } from './event_channel_consistency.js';
import { missingIntermediateCommits } from './missing_intermediate_commits.js';

export const transactionRules: Rule[] = [missingIntermediateCommits, eventChannelConsistency, commitInLoop];
