/**
 * PA303 sync_sleep_in_async
 *
 * What it does: finds `time.sleep(...)` called inside an `async def`.
 * Why is this bad? `time.sleep` blocks the whole event loop: every other request, task and
 * heartbeat waits until it returns.
 */
import type { FileRule, FileRuleContext, RepoRule, RepoRuleContext } from '../../types.js';
import { asyncCallSites, reportEventLoopChains, severityByRole } from './context.js';

const SEVERITY = { handler: 'high', background: 'medium', init: 'medium', other: 'high' } as const;

import { shortSleep, SYNC_SLEEP } from '../../../semantic/blockingIo.js';
import { SHORT_SLEEP } from '../../../analysis/effects.js';

const shortMessage = (what: string, fn: string) => `\`${what}()\` with a duration under 10 ms stops the event loop briefly inside \`async def ${fn}\`, on every call`;

export const syncSleepInAsync: FileRule & RepoRule = {
  meta: {
    code: 'PA303',
    check: 'sync_sleep_in_async',
    family: 'runtime',
    severity: 'high',
    effort: 'S',
    summary: '`time.sleep()` inside `async def` blocks the event loop',
    what: 'Finds calls to `time.sleep` (under any import alias) made inside an `async def` body and not handed to a thread — directly, or through same-repo sync helpers the coroutine calls. A sleep of a literal duration under 10 ms is low, unless a loop repeats it (in its function or at the caller). A blocking call reached so from three or more coroutines is reported once, at the call. Advisory in a coroutine that only ever runs on an event loop of its own (every call of it is a sync function\'s `asyncio.run(c())`, `run_until_complete(c())` or `asyncio.Runner().run(c())`, or an await from such a coroutine, and nothing it reaches starts coroutines beside it with `gather`, `create_task` or a task group; never a route): nothing else waits on that loop.',
    why: 'A coroutine that calls `time.sleep` holds the event loop for the whole delay; every other request and task on that loop stalls with it.',
    bad: 'import time\n\nasync def poll():\n    time.sleep(1)\n',
    good: 'import asyncio\n\nasync def poll():\n    await asyncio.sleep(1)\n',
    fix: 'use `await asyncio.sleep(...)`',
    references: [
      'https://docs.python.org/3/library/asyncio-dev.html#running-blocking-code',
      'https://docs.astral.sh/ruff/rules/blocking-sleep-in-async-function/',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    for (const { call, fn } of asyncCallSites(ctx.model)) {
      if (!call.qualifiedName || !SYNC_SLEEP.has(call.qualifiedName)) continue;
      const short = shortSleep(call) !== undefined;
      ctx.report({
        node: call.node,
        message: short ? shortMessage(call.calleeText, fn.name) : `\`${call.calleeText}()\` blocks the event loop inside \`async def ${fn.name}\``,
        severity: short ? 'low' : severityByRole(ctx.model, call.functionIndex, SEVERITY),
      });
    }
  },
  checkRepo(ctx: RepoRuleContext): void {
    reportEventLoopChains(ctx, 'sync_sleep', SEVERITY, (what, fn, chain) =>
      `\`${what}()\` blocks the event loop inside \`async def ${fn}\``);
    // A millisecond's sleep in a helper: low, unless the caller repeats it in a loop, where the
    // milliseconds add up with the items (as a short sleep in a loop of its own function does).
    reportEventLoopChains(ctx, SHORT_SLEEP, SEVERITY, shortMessage, ['sync_sleep'], (_what, _cheap, _light, _file, inLoop) => (inLoop ? undefined : 'low'));
  },
};
