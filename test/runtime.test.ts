/** Runtime family severities that the fixture marks cannot express. */
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../dist/src/config/config.js';
import { scan } from '../dist/src/engine/scan.js';
import type { Finding } from '../src/types.js';
import { chainNames } from './helpers/result.js';

const RUNTIME = path.resolve(__dirname, '../fixtures/runtime');
let findings: Finding[] = [];

beforeAll(async () => {
  const config = resolveConfig({ report: null, log: null, cache: false, jobs: 1, select: ['PA3'] }, {}, null);
  findings = (await scan(RUNTIME, config, { inProcessBytes: Infinity })).result.findings;
});

const on = (file: string, text: string) => {
  const lines = require('node:fs').readFileSync(path.join(RUNTIME, file), 'utf8').split('\n') as string[];
  const line = lines.findIndex((l) => l.includes(text)) + 1;
  return findings.filter((f) => f.path === file && f.line === line);
};

describe('PA304 severity', () => {
  it('is medium for bytes grown from chunks (always copied whole), low for a string CPython cannot append in place', () => {
    expect(on('PA304.py', 'body += chunk  # expect: PA304')[0]!.severity).toBe('medium');
    // Chunks of a parameter the function is handed: nothing says it is a stream (low).
    expect(on('PA304.py', 'data += chunk  # expect: PA304')[0]!.severity).toBe('low');
    expect(on('PA304.py', 'key += alphabet[length % len(alphabet)]')[0]!.severity).toBe('low');
    expect(on('PA304.py', 'self.body += f"{row.id},{row.name}\\n"  # expect')[0]!.severity).toBe('low');
  });
});

describe('PA301 severity', () => {
  it('is low and advisory for one metadata operation, low for metadata per item of a loop, high for I/O', () => {
    expect(on('PA301.py', 'os.path.exists(p)  # advisory')[0]!).toMatchObject({ severity: 'low', advisory: true });
    expect(on('PA301.py', 'os.path.exists(p)  # advisory')[0]!.downgrades[0]!.evidence).toMatch(/a single metadata operation on one path/);
    expect(on('PA301.py', 'mkdir(parents=True, exist_ok=True)')[0]!.severity).toBe('low');
    expect(on('PA301.py', 'os.listdir(p)')[0]!.severity).toBe('high');
    // Microseconds each: per item of a loop they are counted (low), not advisory, and not high.
    expect(on('PA301.py', 'present = [n for n in names')[0]!).toMatchObject({ severity: 'low', advisory: false });
    expect(on('PA301.py', 'present = [n for n in names')[0]!.message).toMatch(/a metadata operation per item of a loop/);
    // Changing one inode (chmod, unlink) is as cheap: advisory too; copying a tree is not cheap.
    expect(on('PA301.py', '(spool / name).chmod(0o600)')[0]!).toMatchObject({ severity: 'low', advisory: true });
    expect(on('PA301.py', 'os.unlink(spool / f"{name}.lock")')[0]!).toMatchObject({ severity: 'low', advisory: true });
    expect(on('PA301.py', 'shutil.copytree(spool, spool.with_suffix(".bak"))')[0]!).toMatchObject({ severity: 'high', advisory: false });
    // One file moved or copied is one file's I/O (medium); `shutil.chown` changes one inode.
    expect(on('PA301.py', 'shutil.move(str(staging / "badge.pem"), str(home))')[0]!).toMatchObject({ severity: 'medium', advisory: false });
    expect(on('PA301.py', 'shutil.copy(staging / "issuer.pem", home)')[0]!).toMatchObject({ severity: 'medium', advisory: false });
    expect(on('PA301.py', 'shutil.chown(home / "badge.pem", user=owner_uid)')[0]!).toMatchObject({ severity: 'low', advisory: true });
  });

  it('reports waiting for a child process, not starting one; a TCP connect, not a local socket\'s', () => {
    expect(on('PA301.py', 'worker.wait()')[0]!.message).toMatch(/`Popen\.wait`/);
    expect(on('PA301.py', 'subprocess.Popen(["du", "-sh", "/srv"]).communicate()')).toHaveLength(1);
    expect(on('PA301.py', 'with subprocess.Popen(["tar"')[0]!.message).toMatch(/`subprocess\.Popen`/);
    const source = require('node:fs').readFileSync(path.join(RUNTIME, 'PA301.py'), 'utf8') as string;
    for (const silent of ['worker = subprocess.Popen(["render-thumbs"', 'sidecar = subprocess.Popen(', 'local.connect(path)']) expect(source).toContain(silent);
    expect(on('PA301.py', 'worker = subprocess.Popen(["render-thumbs"')).toHaveLength(0);
    expect(on('PA301.py', 'sidecar = subprocess.Popen(')).toHaveLength(0);
    expect(on('PA301.py', 'local.connect(path)')).toHaveLength(0);
    expect(on('PA301.py', 'remote.connect((host, 9000))')[0]!.message).toMatch(/`socket\.connect`/);
  });

  it('is advisory for one read of a file shipped with the code, directly and through a helper; not for a caller\'s path or a write', () => {
    const own = on('PA301.py', 'return Path(os.path.dirname(__file__), "prompts", "system.txt").read_text()')[0]!;
    expect(own).toMatchObject({ severity: 'low', advisory: true });
    expect(own.message).toMatch(/a read of a file shipped with the code/);
    expect(own.downgrades[0]!.evidence).toMatch(/rooted at `__file__`/);
    const via = on('PA301.py', 'return load_template()')[0]!;
    expect(chainNames(via.chain)).toEqual(['render_page', 'load_template', 'open (a file shipped with the code)']);
    // One local file read or written, once: medium (a page-cache hit for the files services
    // read per request); per item of a loop it adds up: high.
    expect(on('PA301.py', 'return load_named(name)')[0]!).toMatchObject({ severity: 'medium', advisory: false });
    // Read again per item of the caller's loop: file I/O, high.
    expect(on('PA301.py', 'return [load_template() for _ in range(count)]')[0]!).toMatchObject({ severity: 'high', advisory: false });
    expect(via).toMatchObject({ severity: 'low', advisory: true });
    expect(on('PA301.py', 'with open(os.path.join(upload_dir, name), "rb") as f')[0]!).toMatchObject({ severity: 'medium', advisory: false });
    expect(on('PA301.py', 'with open(os.path.join(os.path.dirname(__file__), "out.txt"), "w") as f')[0]!).toMatchObject({ severity: 'medium', advisory: false });
  });

  it('is low for a chain that ends in one metadata lookup', () => {
    const f = on('PA301.py', 'return present, has_marker(folder)')[0]!;
    expect(chainNames(f.chain)).toEqual(['prepare_upload', 'has_marker', 'Path.is_file']);
    expect(f.severity).toBe('low');
    // `mkdir(exist_ok=True)` is one only with its arguments: the chain reads them at the call.
    const ensured = on('PA301.py', 'ensure_spool_dir(base)  # advisory')[0]!;
    expect(chainNames(ensured.chain)).toEqual(['spool_upload', 'ensure_spool_dir', 'Path.mkdir']);
    expect(ensured.severity).toBe('low');
    expect(on('PA301.py', 'create_spool_dir(base / "new")')[0]!.severity).toBe('high');
    // A helper that reads files per item, or that also calls out over the network, stays high.
    expect(on('PA301.py', 'return read_all_reports(folder)')[0]!.severity).toBe('high');
    expect(on('PA301.py', 'return read_and_post(folder)')[0]!.severity).toBe('high');
    // A whole file read in chunks (`iter(lambda: f.read(n), b"")`): a read per block.
    expect(on('PA301.py', 'return file_digest(path)')[0]!.severity).toBe('high');
    // A metadata lookup first does not make a helper that then writes a file cheap.
    const spool = on('PA301.py', 'save_spool_report(base, text)  # expect')[0]!;
    // One file written: medium, and not low (a write, not a lookup).
    expect(spool.severity).toBe('medium');
    // The evidence is the wait that makes it high (the write), not the directory check before it.
    expect(chainNames(spool.chain)).toEqual(['spool_report', 'save_spool_report', 'Path.write_text']);
    expect(spool.message).toMatch(/blocking call `Path\.write_text`/);
  });
});

describe('a coroutine on an event loop of its own', () => {
  it('is advisory when only `asyncio.run` / a Runner starts it, and says which call does', () => {
    const own = on('app/own_loop.py', 'return requests.get("https://rates.example/latest"')[0]!;
    expect(own.advisory).toBe(true);
    expect(own.downgrades.at(-1)!.evidence).toMatch(/runs only on an event loop of its own: `asyncio.run\(refresh_rates\(\.\.\.\)\)` in `sync_rates`/);
    // A base class's `__call__` runs `self.run()` on a fresh loop: both subclasses' `run`.
    for (const text of ['with open(path, "w") as out:', 'with open(path) as src:']) {
      const f = on('app/own_loop.py', text)[0]!;
      expect(f.advisory).toBe(true);
      expect(f.downgrades.at(-1)!.evidence).toMatch(/`JobBase.__call__`/);
    }
  });

  it('is advisory when a project decorator runs the coroutine it wraps on a loop per call', () => {
    const pushed = on('app/wrapped_jobs.py', 'json={"id": invoice_id}')[0]!;
    expect(pushed.advisory).toBe(true);
    expect(pushed.downgrades.at(-1)!.evidence).toMatch(/decorated with `@blocking`, whose `loop\.run_until_complete\(coro_fn\(\.\.\.\)\)` in `blocking\.call`/);
    // A decorator factory: the runner sits one function deeper.
    expect(on('app/wrapped_jobs.py', 'statements/{account}')[0]!.downgrades.at(-1)!.evidence).toMatch(/decorated with `@on_own_loop`/);
    // A decorator that keeps it a coroutine, or whose loop also runs a heartbeat task: not alone.
    expect(on('app/wrapped_jobs.py', 'rates.example/{currency}')[0]!.advisory).toBe(false);
    expect(on('app/wrapped_jobs.py', 'ledger.example/sync')[0]!.advisory).toBe(false);
  });

  it('keeps its severity when the server\'s loop awaits it too, when it runs others beside it, or when it is a route', () => {
    // High: a route awaits it on the server's loop (its `timeout=` bounds the wait, it does not end the blocking).
    expect(on('app/own_loop.py', 'f"https://profiles.example/{user_id}"')[0]!).toMatchObject({ advisory: false, severity: 'high' });
    // `gather` runs several on that loop: one blocking call stalls the others.
    expect(on('app/own_loop.py', 'return requests.get(url, timeout=5).text')[0]!.advisory).toBe(false);
    // A route that a command also starts with `asyncio.run`: the server calls it too.
    expect(on('app/own_loop.py', '"https://rates.example/now"')[0]!.advisory).toBe(false);
    // A coroutine only a job's own `run` awaits shares that run's loop of its own.
    expect(on('app/own_loop.py', '"https://mail.example/send"')[0]!.downgrades.at(-1)!.evidence).toMatch(/`JobBase.__call__`/);
  });
});

describe('PA303 short sleeps and shared helpers', () => {
  it('is low for a literal sleep under 10 ms, directly or in a helper, unless a loop repeats it', () => {
    expect(on('PA303.py', 'time.sleep(0)  # expect')[0]!.severity).toBe('low');
    expect(on('PA303.py', 'time.sleep(0.001)  # expect')[0]!.severity).toBe('low');
    expect(on('PA303.py', 'return Envelope(body)')[0]!).toMatchObject({ severity: 'low' });
    expect(on('PA303.py', 'return Envelope(body)')[0]!.message).toMatch(/under 10 ms/);
    expect(on('PA303.py', 'return [Envelope(b) for b in bodies]')[0]!.severity).toBe('high');
    expect(on('PA303.py', 'time.sleep(1)  # expect')[0]!.severity).toBe('high');
  });

  it('reports a helper that three coroutines reach once, at its blocking call, with the callers', () => {
    const [shared, ...more] = on('PA303.py', 'time.sleep(0.5)  # expect');
    expect(more).toEqual([]);
    expect(shared!).toMatchObject({ severity: 'high', function: 'throttle' });
    expect(shared!.message).toMatch(/the 3 coroutines that call it synchronously/);
    expect(shared!.callers!.map((c) => c.function)).toEqual(['first_caller', 'second_caller', 'third_caller']);
    expect(on('PA303.py', '    throttle()')).toEqual([]);
    // Two callers of a helper are each reported where they call it.
    expect(on('PA303.py', 'retry_twice()  # expect')).toHaveLength(1);
  });

  it('skips end-to-end suites as test code', () => {
    expect(findings.filter((f) => f.path.startsWith('e2e/'))).toEqual([]);
  });
});

describe('PA307 one finding per coroutine', () => {
  it('lists every other sync call of the function (marked `# same finding: PA307`) in its one finding', () => {
    for (const file of ['PA307.py', 'app/db_endpoints.py']) {
      const lines = require('node:fs').readFileSync(path.join(RUNTIME, file), 'utf8').split('\n') as string[];
      const same = lines.flatMap((l, i) => (l.includes('# same finding: PA307') ? [i + 1] : []));
      expect(same.length).toBeGreaterThan(0);
      const listed = findings
        .filter((f) => f.path === file && f.code === 'PA307')
        .flatMap((f) => (/in this function: lines? ([\d, ]+)\)/.exec(f.message)?.[1] ?? '').split(', ').filter(Boolean).map(Number));
      expect(listed.sort((a, b) => a - b)).toEqual(same);
    }
  });
});

describe('PA306 severity', () => {
  it('is medium for a copy in a loop of what the data built, advisory for a display of a few items written out', () => {
    const data = on('PA306.py', 'out.append(list([r["id"] for r in page]))').find((f) => f.code === 'PA306')!;
    expect([data.severity, data.advisory]).toEqual(['medium', false]);
    const literal = on('PA306.py', 'out.append(dict({1: cred["kty"], 3: cred["alg"]}))').find((f) => f.code === 'PA306')!;
    expect(literal.advisory).toBe(true);
    expect(literal.downgrades[0]?.evidence).toMatch(/a display of 2 items written out in the code/);
  });
});
