/**
 * PA301 blocking_io_in_async
 *
 * What it does: finds blocking file, network, process and console I/O called on the event loop
 * inside an `async def`.
 * Why is this bad? While the call waits on the disk, the network or a child process, the event
 * loop waits with it, and so does every other request the process serves.
 */
import type { SyntaxNode } from '../../../parse/parser.js';
import type { Severity } from '../../../types.js';
import type { FileRule, FileRuleContext, RepoRule, RepoRuleContext } from '../../types.js';
import { alternativeFor as alternativeForCall, blockingIoCall, BUNDLED_FILE, isCheapMetadata, isSingleFileOp, readsBundledFile } from '../../../semantic/blockingIo.js';
import { asyncCallSites, reportEventLoopChains, severityByRole } from './context.js';
import { assignmentsTo, type CallInfo, type FileModel } from '../../../semantic/model.js';


const SEVERITY = { handler: 'high', background: 'medium', init: 'low', other: 'high' } as const;

/**
 * One metadata operation on a path (a stat, an existence check, `mkdir(exist_ok=True)`, an
 * unlink, a chmod, a rename), not in a loop: microseconds when the kernel has the inode cached,
 * which it almost always has. Reviewers of six trees judged each such finding, lookups and
 * changes alike, not worth a report; it stays listed, as advisory.
 */
const METADATA_EVIDENCE = 'a single metadata operation on one path (exists, stat, mkdir(exist_ok=True), unlink, chmod, rename): microseconds when the kernel has the inode cached';
/**
 * One read of a file shipped with the code (a path rooted at the module's `__file__`, a package
 * resource), not in a loop: a small file that the page cache serves after the first read.
 */
const BUNDLED_EVIDENCE = 'a single read of a file shipped with the code (a path rooted at `__file__` or a package resource): small, and served from the page cache after the first read';

/** The alternative for a blocking call, by its name without the note on a bundled file. */
function alternativeFor(what: string): string {
  return alternativeForCall(what.endsWith(BUNDLED_FILE) ? what.slice(0, -BUNDLED_FILE.length) : what);
}

export const blockingIoInAsync: FileRule & RepoRule = {
  meta: {
    code: 'PA301',
    check: 'blocking_io_in_async',
    family: 'runtime',
    severity: 'high',
    effort: 'S',
    summary: 'Blocking file, network or process I/O inside `async def`',
    what: 'Finds blocking I/O called on the event loop: `open()` and the methods of the file it gives, archives (`gzip`/`bz2`/`lzma`/`tarfile`/`zipfile`, `fsspec.open`), `pickle.load` (not over an in-memory buffer: `zipfile.ZipFile(io.BytesIO(data))`, `tarfile.open(fileobj=buf)` with `buf = io.BytesIO(...)` read no file), `pathlib.Path` reads, writes and metadata, `os`/`os.path`/`shutil` file-system calls, `requests` (and `requests.Session`), sync `httpx`/`httpx.Client`, `urllib`, every method of a `urllib3` pool, `boto3` clients and resources, SDK clients of services (pymongo, Elasticsearch/OpenSearch, OpenAI/Anthropic, stripe, SendGrid, slack_sdk\'s `WebClient`, Twilio, the Docker SDK, the Kubernetes client\'s API classes), `smtplib`, DNS lookups, `subprocess`, `os.system`/`os.popen`/`os.spawn*`/`os.posix_spawn*`/`os.wait*`, `input()` and blocking `socket` calls — made inside `async def` and not handed to a thread, directly or through same-repo sync helpers and objects (the finding then carries the call chain). Each finding names the async alternative. One local file opened, read or written outside any loop (`open`, `Path.read_text`, a method of the file it gives; directly, or through helpers that reach nothing else blocking and no file work per item) is `medium`: a page-cache hit or a small write for the files a service reads per request; per item of a loop, or next to a network call, a process or a tree operation, `high`. A single metadata operation outside a loop (`exists`, `is_file`, `stat`, `os.path.realpath` (a few lookups of the path\'s links), `mkdir(exist_ok=True)`, `os.mkdir`, `unlink`, `chmod`, `rename`, a temporary directory made by `tempfile.mkdtemp()` or `TemporaryDirectory()` — not as a `with` item, whose exit removes the tree) is advisory (low): microseconds when the kernel has the inode cached; per item of a loop, directly or through a helper, such operations are low and counted (not high). So is a single read of a file shipped with the code (a path rooted at the module\'s `__file__`, directly or through a name bound to one, or a package resource: `importlib.resources`, `pkgutil.get_data`): small, and served from the page cache after the first read. One file copied or moved (`shutil.copy`, `shutil.copyfileobj`, `shutil.move`: a rename on the same file system) counts as one file\'s I/O (`medium` outside a loop), and `shutil.chown` as one metadata change. Where it differs from flake8-async\'s ASYNC2xx on purpose: `subprocess.Popen(...)` alone starts the child (a fork and exec, which `asyncio.create_subprocess_exec` runs on the loop\'s thread too) and is not flagged, while waiting for it is (`wait()`, `communicate()`, also chained on the call, and leaving `with Popen(...)`, whose exit waits); `connect()` on an `AF_UNIX` socket (made so in the function) is not flagged: a local socket connects or fails at once, while its reads and writes wait for the peer; `os.path.normpath`/`relpath` are string work and are not flagged; `os.fdopen(fd)` wraps a descriptor that is already open (one fstat) and is not flagged, while the reads and writes of the file it gives are; a call of a module the file never imports (`subprocess.run()` with no `import subprocess`) cannot be resolved and is not flagged; any method of a typed `urllib3` pool or file object is flagged, whatever its arguments, except a method of a file that a reported `open()` of the same function opened (`with open(p) as f: f.read()` is one blocking operation with one fix, reported once at `open`; a read a loop repeats is reported too), and a chain whose last call is a single metadata lookup (`ensure_dir(p)` running `p.mkdir(exist_ok=True)`) is advisory like the call itself, unless the chain\'s call runs per item of a loop; a sync library function is flagged even under a mistaken `await`. Receivers are typed from constructors, annotations, `self.x = ...`, properties of the file\'s classes (`def lock(self) -> Path`) and module-level objects imported from another module of the project (`SOCKET = Path(...)` there). A blocking call that three or more coroutines reach through helpers is reported once, at the call, with their call sites (`callers`). Advisory in a coroutine that only ever runs on an event loop of its own (every call of it is a sync function\'s `asyncio.run(c())`, `run_until_complete(c())` or `asyncio.Runner().run(c())`, or an await from such a coroutine, and nothing it reaches starts coroutines beside it with `gather`, `create_task` or a task group; never a route): nothing else waits on that loop.',
    why: 'The event loop runs one thing at a time. A blocking call inside a coroutine stops every other request, stream and background task until the disk, the network or the child process answers.',
    bad: 'import requests\n\n@app.get("/rate")\nasync def rate():\n    return requests.get(URL).json()\n',
    good: 'import httpx\n\n@app.get("/rate")\nasync def rate():\n    async with httpx.AsyncClient() as client:\n        return (await client.get(URL)).json()\n',
    fix: 'use `aiofiles`/`anyio.Path`, `httpx.AsyncClient`, `asyncio.create_subprocess_exec`, or `await asyncio.to_thread(...)`',
    references: [
      'https://docs.python.org/3/library/asyncio-dev.html#running-blocking-code',
      'https://docs.astral.sh/ruff/rules/#flake8-async-async',
      'https://www.python-httpx.org/async/',
    ],
  },
  checkFile(ctx: FileRuleContext): void {
    const sites = [...asyncCallSites(ctx.model)];
    // `open()` calls reported on the loop, by start offset (with how many loops run them): the
    // file's own methods are the same blocking operation (`with open(p) as f: data = f.read()`
    // is one finding, at `open`) — unless a loop repeats them (`while True: f.read(65536)`).
    const reportedOpens = new Map<number, number>();
    // An `open()` whose finding the code suppresses (`# noqa: PA301`) reports nothing to fold into.
    const suppressed = (call: CallInfo) => [call.line, call.node.endPosition.row + 1].some((l) => {
      const codes = ctx.model.suppressions.get(l);
      return !!codes && (codes.has('*') || codes.has('PA301'));
    });
    for (const { call } of sites) if (call.qualifiedName === 'builtins.open' && blockingIoCall(ctx.model, call) && !suppressed(call)) reportedOpens.set(call.node.startIndex, loopDepth(call));
    for (const { call, fn } of sites) {
      const what = blockingIoCall(ctx.model, call);
      if (!what) continue;
      // A call in a `while` condition runs on every pass (`while chunk := f.read(1 << 20):`).
      const repeated = loopDepth(call) > 0;
      if (what.startsWith('file.') && openedHere(ctx.model, call, reportedOpens)) continue;
      // Metadata operations are microseconds each: one is advisory, one per item of a loop low.
      const metaOp = isCheapMetadata(what, call);
      const metadata = !repeated && metaOp;
      const bundled = !repeated && !metadata && readsBundledFile(ctx.model, call);
      const cheap = metadata || bundled;
      const note = metadata ? ' (a single metadata operation: cheap, but still a disk round trip when the cache misses)' : metaOp ? ' (a metadata operation per item of a loop)' : bundled ? ' (a read of a file shipped with the code)' : '';
      ctx.report({
        node: call.node,
        message: `blocking call \`${what}\` on the event loop inside \`async def ${fn.name}\`${note}; ${alternativeFor(what)}`,
        severity: cheap || metaOp ? 'low' : !repeated && singleFile(what, call) ? atMostMedium(severityByRole(ctx.model, call.functionIndex, SEVERITY)) : severityByRole(ctx.model, call.functionIndex, SEVERITY),
        recommendation: alternativeFor(what),
        ...(metadata ? { advisory: METADATA_EVIDENCE } : bundled ? { advisory: BUNDLED_EVIDENCE } : {}),
      });
    }
  },
  checkRepo(ctx: RepoRuleContext): void {
    reportEventLoopChains(ctx, 'blocking_io', SEVERITY, (what, fn, chain) =>
      `blocking call \`${what}\` on the event loop inside \`async def ${fn}\`; ${alternativeFor(what)}`, [], (what, cheap, light, fileOnly) => (cheap || light ? 'low' : fileOnly && isSingleFileOp(what) ? 'medium' : undefined), alternativeFor,
      // A cheap chain to `mkdir` is one whose call passes `exist_ok=True` (else it reaches heavy I/O);
      // one to a bundled file's read reaches no other I/O.
      (what, cheap) => (!cheap ? undefined : what.endsWith(BUNDLED_FILE) ? BUNDLED_EVIDENCE : isCheapMetadata(what) || /^(os\.makedirs|Path\.mkdir)$/.test(what) ? METADATA_EVIDENCE : undefined));
  },
};

/**
 * One local file opened, read or written outside any loop: `medium`, not `high`. A template or a
 * config read per request is a page-cache hit; reviewers of nine held-out samples judged every
 * such finding at `high` overstated, while network calls, processes and tree operations held up.
 */
function singleFile(what: string, call: CallInfo): boolean {
  return call.loops.length === 0 && isSingleFileOp(what);
}

function atMostMedium(s: Severity): Severity {
  return s === 'high' || s === 'critical' ? 'medium' : s;
}

/** How many loops run a call again: those around it, and a `while` whose condition it is in. */
function loopDepth(call: CallInfo): number {
  return call.loops.length + (inWhileCondition(call.node) ? 1 : 0);
}

/** Is the node inside the condition of a `while` loop (not in a nested def or lambda)? */
function inWhileCondition(node: SyntaxNode): boolean {
  let child = node;
  for (let p = node.parent; p; child = p, p = p.parent) {
    if (p.type === 'function_definition' || p.type === 'lambda' || p.type === 'block') return false;
    if (p.type === 'while_statement') return p.childForFieldName('condition')?.id === child.id;
  }
  return false;
}

/**
 * Is the file object a method is called on bound, in the same function and loop, by an `open()`
 * call already reported (`with open(p) as f:` around the call, or `f = open(p)` before it)?
 */
function openedHere(model: FileModel, call: CallInfo, reportedOpens: ReadonlyMap<number, number>): boolean {
  if (!reportedOpens.size) return false;
  const same = (start: number) => reportedOpens.get(start) === loopDepth(call);
  // `open(p).read()`: the method of the very file the reported call opens.
  if (call.receiver?.type === 'call') return same(call.receiver.startIndex);
  if (call.receiver?.type !== 'identifier') return false;
  const name = call.receiver.text;
  for (const wi of call.withs) {
    const w = model.withs[wi]!;
    if (w.functionIndex !== call.functionIndex) continue;
    if (w.items.some((i) => i.alias === name && same(i.value.startIndex))) return true;
  }
  let bound: ReturnType<typeof assignmentsTo>[number] | undefined;
  for (const a of assignmentsTo(model, name)) {
    if (a.functionIndex === call.functionIndex && a.line <= call.line && !a.fromWith && (!bound || a.line >= bound.line)) bound = a;
  }
  return !!bound?.value && same(bound.value.startIndex);
}
