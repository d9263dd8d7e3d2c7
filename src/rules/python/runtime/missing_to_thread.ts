/**
 * PA305 missing_to_thread
 *
 * What it does: finds CPU-heavy synchronous work done on the event loop inside `async def`:
 * password hashing, image/XML/HTML/dataframe parsing, compression, and parsing or hashing of a
 * whole payload (a request body, a file's content).
 * Why is this bad? The event loop cannot switch while Python computes: a 300 ms bcrypt round or
 * a 20 MB JSON parse delays every other request by as much.
 */
import type { FileRule, FileRuleContext, RepoRule, RepoRuleContext } from '../../types.js';
import { cpuHeavyCall } from '../../../semantic/cpuHeavy.js';
import { asyncCallSites, reportEventLoopChains, severityByRole } from './context.js';


const SEVERITY = { handler: 'medium', background: 'medium', init: 'low', other: 'medium' } as const;

export const missingToThread: FileRule & RepoRule = {
  meta: {
    code: 'PA305',
    check: 'missing_to_thread',
    family: 'runtime',
    severity: 'medium',
    effort: 'S',
    summary: 'CPU-heavy synchronous work inside `async def` not handed to a thread',
    what: 'Finds CPU-bound calls on the event loop: `bcrypt.hashpw`/`checkpw`, `passlib`/`argon2` `hash`/`verify`, `hashlib.pbkdf2_hmac`/`scrypt`, `PIL.Image.open`, `cv2.imread`, `lxml` and `xml.etree` parsing, `BeautifulSoup(...)`, `pandas.read_*`, `gzip`/`zlib`/`bz2`/`lzma` (de)compression, `json.load(fp)`, and `json.loads`/`yaml.load`/`hashlib` digests of the content of a file (`f.read()`, `path.read_bytes()`), and PyYAML or `pickle.loads` parses once per item of a loop (a single small document is not worth a thread). Same-repo sync helpers that do such work are followed. A blocking call that three or more coroutines reach through helpers is reported once, at the call, with their call sites (`callers`). Advisory in a coroutine that only ever runs on an event loop of its own (every call of it is a sync function\'s `asyncio.run(c())`, `run_until_complete(c())` or `asyncio.Runner().run(c())`, or an await from such a coroutine, and nothing it reaches starts coroutines beside it with `gather`, `create_task` or a task group; never a route): nothing else waits on that loop.',
    why: 'Python holds the event loop while it computes. A password hash (hundreds of milliseconds by design) or the parse of a large document delays every other coroutine — requests time out although the CPU is only busy with one of them.',
    bad: 'import bcrypt\n\n@app.post("/login")\nasync def login(form: Login):\n    ok = bcrypt.checkpw(form.password.encode(), user.hash)\n',
    good: 'import asyncio, bcrypt\n\n@app.post("/login")\nasync def login(form: Login):\n    ok = await asyncio.to_thread(bcrypt.checkpw, form.password.encode(), user.hash)\n',
    fix: 'run it in a worker thread: `await asyncio.to_thread(fn, ...)` (or a process pool for long work)',
    references: [
      'https://docs.python.org/3/library/asyncio-task.html#asyncio.to_thread',
      'https://docs.python.org/3/library/asyncio-dev.html#running-blocking-code',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    for (const { call, fn } of asyncCallSites(ctx.model)) {
      const what = cpuHeavyCall(ctx.model, call);
      if (!what) continue;
      ctx.report({
        node: call.node,
        message: `CPU-heavy \`${what}\` runs on the event loop inside \`async def ${fn.name}\``,
        severity: severityByRole(ctx.model, call.functionIndex, SEVERITY),
      });
    }
  },
  checkRepo(ctx: RepoRuleContext): void {
    // A helper that also blocks on I/O is reported by PA301 at the same call site, with the same fix.
    reportEventLoopChains(ctx, 'cpu', SEVERITY, (what, fn, chain) =>
      `CPU-heavy \`${what}\` runs on the event loop inside \`async def ${fn}\``, ['blocking_io']);
  },
};
