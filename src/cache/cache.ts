/**
 * The incremental cache: `.persist-audit-cache/pack-v1.bin` at the scanned root, one pack file
 * per root rewritten (atomically: temp file + rename) after a scan that changed anything.
 *
 * Layout: 8-byte magic, u32 length of the index, u32 length of the summaries, sha256 of the
 * index, sha256 of the summaries, then the index (v8-serialised: header, per-file entries without
 * summaries, the last repo-phase result) and the summaries section (v8), read and checked only
 * when the repo phase must run again. An unchanged rescan thus reads the small index only.
 *
 * What is stored
 * - per Python file: mtime, size, inode, sha256 of the content, and its {@link FileOutcome}
 *   (findings, summary, stats; never timings), valid only under the pack's `fileKey`:
 *   sha256(tool version + a hash of the compiled code, enabled file-rule codes, severity
 *   overrides, the project context, the root). The parser is not part of it: both bindings give
 *   the same trees.
 * - the project context, valid under `contextKey`: the tool hash, the root, and every walked
 *   file's path, size and mtime (discovery reads only walked files).
 *
 * When an entry is trusted (the content-hash policy)
 * - stat fast path: same mtime, size and inode as recorded, and the mtime is older than the scan
 *   that recorded it by more than {@link RACY_MS} — so the file cannot have changed again within
 *   the same timestamp tick after it was read ("racily clean", as git calls it);
 * - otherwise the file is read and its sha256 compared with the recorded one: equal content is a
 *   hit (a touched or checked-out file), anything else is re-analysed;
 * - `PERSIST_AUDIT_CACHE_VERIFY=1` hashes every file, whatever the stat says;
 * - an outcome that depends on other paths (Rule 6's small-file evidence) is trusted only if
 *   those paths still have the size recorded.
 * A pack that does not deserialise, has the wrong shape or the wrong key is ignored entirely;
 * an entry of the wrong shape is a miss. Nothing in the cache is trusted beyond that.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import type { ProjectContext } from '../discovery/context.js';
import type { SourceFile } from '../discovery/walk.js';
import type { FileOutcome, RawFinding } from '../pool/protocol.js';
import type { FileSummary } from '../analysis/summary.js';
import type { InternalError } from '../types.js';
import { pathState } from '../engine/analyzeFile.js';
import { TOOL_VERSION } from '../version.js';

export const CACHE_DIR = '.persist-audit-cache';
const PACK = 'pack-v1.bin';
const FORMAT = 'persist-audit-cache/2';
const MAGIC = Buffer.from('PACACHE1', 'latin1');
const HEAD = MAGIC.length + 4 + 4 + 32 + 32;
/** An mtime this close to (or after) the recording scan's start is not trusted on its own. */
export const RACY_MS = 2000;

/** [mtimeMs, size, ino, sha256 hex, outcome without its summary] */
type Entry = [number, number, number, string, FileOutcome];

/** The repo phase's own output, reusable when its inputs (every summary, the context, the rules) are unchanged. */
export interface RepoResult {
  findings: RawFinding[];
  internalErrors: InternalError[];
}

interface Pack {
  format: string;
  /** When the scan that wrote the pack started (ms since epoch). */
  scanStart: number;
  fileKey: string;
  contextKey: string;
  context: ProjectContext | null;
  files: Map<string, Entry>;
  repo: { key: string; result: RepoResult } | null;
  /** Loads the summaries section (null when it is unreadable). */
  summaries: () => Map<string, FileSummary> | null;
}

export interface CacheStats {
  hits: number;
  /** Hits confirmed by reading and hashing the file (stat differed, racy, or verify mode). */
  hashed: number;
  misses: number;
  contextHit: boolean;
  wrote: boolean;
}

export interface LookupResult {
  hits: FileOutcome[];
  misses: SourceFile[];
}

export class ScanCache {
  readonly stats: CacheStats = { hits: 0, hashed: 0, misses: 0, contextHit: false, wrote: false };
  private readonly old: Pack | null;
  private readonly scanStart = Date.now();
  private readonly next = new Map<string, Entry>();
  private readonly nextSummaries = new Map<string, FileSummary>();
  private repo: { key: string; result: RepoResult } | null = null;
  private readonly statByRel = new Map<string, fs.Stats | null>();
  private readonly toolHash = toolFingerprint();
  private fileKey = '';
  private contextKey = '';
  private context: ProjectContext | null = null;
  private changed = false;
  private readonly verifyAll = process.env.PERSIST_AUDIT_CACHE_VERIFY === '1';

  constructor(
    private readonly root: string,
    private readonly dir: string,
    private readonly notice: (message: string) => void = () => {},
  ) {
    this.old = readPack(path.join(dir, PACK));
  }

  /** Opens the cache of `root` (or of `dir` when given: tests and bench). */
  static open(root: string, notice?: (message: string) => void, dir?: string): ScanCache {
    return new ScanCache(root, dir ?? path.join(root, CACHE_DIR), notice);
  }

  /** The cached project context when no walked file changed since it was discovered. */
  cachedContext(python: SourceFile[], others: string[]): ProjectContext | null {
    const h = crypto.createHash('sha256').update(this.toolHash).update('\0').update(this.root);
    let racy = false;
    const all = [...python.map((f) => f.rel), ...others].sort();
    for (const rel of all) {
      const st = this.stat(rel);
      h.update('\0').update(rel).update('\0');
      if (!st) {
        h.update('missing');
        continue;
      }
      h.update(`${st.size}:${st.mtimeMs}:${st.ino}`);
      if (this.old && st.mtimeMs >= this.old.scanStart - RACY_MS) racy = true;
    }
    this.contextKey = h.digest('hex');
    if (!racy && this.old?.context && this.old.contextKey === this.contextKey) {
      this.stats.contextHit = true;
      this.context = this.old.context;
      return this.old.context;
    }
    return null;
  }

  /** Sets the key every file entry is valid under; call once the context is known. */
  setKey(parts: { codes: string[]; severity: Record<string, string>; context: ProjectContext }): void {
    this.context = parts.context;
    const severity = Object.entries(parts.severity).sort(([a], [b]) => (a < b ? -1 : 1));
    this.fileKey = crypto
      .createHash('sha256')
      .update(JSON.stringify([FORMAT, this.toolHash, this.root, [...parts.codes].sort(), severity, parts.context]))
      .digest('hex');
    if (!this.old || this.old.fileKey !== this.fileKey || this.old.contextKey !== this.contextKey) this.changed = true;
  }

  /** Splits the files into valid cached outcomes and files to analyse. */
  lookup(files: SourceFile[]): LookupResult {
    const hits: FileOutcome[] = [];
    const misses: SourceFile[] = [];
    const table = this.old && this.old.fileKey === this.fileKey ? this.old.files : null;
    for (const f of files) {
      this.stat(f.rel); // before any worker reads it: see store()
      const entry = table?.get(f.rel);
      const hit = entry ? this.validate(f, entry) : null;
      if (hit) {
        hits.push({ ...hit[4], hash: hit[3] });
        this.next.set(f.rel, hit);
        if (hit !== entry) this.changed = true;
      } else {
        misses.push(f);
        this.changed = true;
      }
    }
    if (table && table.size !== this.next.size) this.changed = true; // deleted files
    this.stats.hits = hits.length;
    this.stats.misses = misses.length;
    return { hits, misses };
  }

  /**
   * Records freshly analysed outcomes (with their content hash) for the next scan, under the stat
   * taken before the worker read the file: a change after that stat moves the mtime on, so the
   * next scan hashes the file instead of trusting the stat.
   */
  store(outcomes: FileOutcome[]): void {
    for (const o of outcomes) {
      const hash = o.hash;
      if (!hash || o.internalErrors.length) continue; // never cache a failure
      const st = this.stat(o.path);
      if (!st) continue;
      const { ruleMs: _r, stageMs: _s, hash: _h, summary, ...kept } = o;
      this.next.set(o.path, [st.mtimeMs, st.size, st.ino, hash, kept]);
      if (summary) this.nextSummaries.set(o.path, summary);
      this.changed = true;
    }
  }

  /**
   * Gives cached hits their summaries (for the repo phase). Returns the paths whose summary
   * could not be loaded: the caller analyses those files again.
   */
  attachSummaries(hits: FileOutcome[]): Set<string> {
    const missing = new Set<string>();
    const table = this.loadOldSummaries();
    for (const o of hits) {
      const s = table?.get(o.path);
      if (s && typeof s === 'object' && s.path === o.path && Array.isArray(s.calls) && Array.isArray(s.functions)) {
        o.summary = s;
        this.nextSummaries.set(o.path, s);
      } else if (!o.skipped) {
        missing.add(o.path);
        this.next.delete(o.path);
        this.changed = true;
      }
    }
    return missing;
  }

  /** The key of the repo phase's inputs: every file's content, the context, the rules. */
  repoKey(outcomes: FileOutcome[], repoCodes: string[]): string | null {
    const h = crypto.createHash('sha256').update(this.fileKey).update('\0').update(JSON.stringify([...repoCodes].sort()));
    for (const o of outcomes) {
      if (!o.hash) return null;
      h.update('\0').update(o.path).update('\0').update(o.hash);
    }
    return h.digest('hex');
  }

  /** The repo phase's result recorded under `key`, if any. */
  cachedRepo(key: string | null): RepoResult | null {
    if (!key || !this.old?.repo || this.old.repo.key !== key) return null;
    const r = this.old.repo.result;
    if (!r || !Array.isArray(r.findings) || !Array.isArray(r.internalErrors)) return null;
    this.repo = this.old.repo;
    return r;
  }

  setRepo(key: string | null, result: RepoResult): void {
    if (!key) return;
    this.repo = { key, result };
    this.changed = true;
  }

  /** Writes the pack atomically when anything changed; a read-only tree only costs a notice. */
  save(): void {
    if (!this.changed) return;
    // Entries whose summary is neither fresh nor attached keep the one in the old pack.
    const pending = [...this.next.keys()].filter((rel) => !this.nextSummaries.has(rel));
    if (pending.length) {
      const old = this.loadOldSummaries();
      for (const rel of pending) {
        const s = old?.get(rel);
        if (s) this.nextSummaries.set(rel, s);
      }
    }
    const index = v8.serialize({
      format: FORMAT,
      scanStart: this.scanStart,
      fileKey: this.fileKey,
      contextKey: this.contextKey,
      context: this.context,
      files: [...this.next],
      repo: this.repo,
    });
    const summaries = v8.serialize([...this.nextSummaries]);
    const head = Buffer.alloc(HEAD);
    MAGIC.copy(head);
    head.writeUInt32LE(index.length, MAGIC.length);
    head.writeUInt32LE(summaries.length, MAGIC.length + 4);
    crypto.createHash('sha256').update(index).digest().copy(head, MAGIC.length + 8);
    crypto.createHash('sha256').update(summaries).digest().copy(head, MAGIC.length + 40);
    const file = path.join(this.dir, PACK);
    const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
    try {
      fs.mkdirSync(this.dir, { recursive: true });
      const ignore = path.join(this.dir, '.gitignore');
      if (!fs.existsSync(ignore)) fs.writeFileSync(ignore, '# written by persist-audit\n*\n');
      const fd = fs.openSync(tmp, 'w');
      try {
        fs.writeSync(fd, head);
        fs.writeSync(fd, index);
        fs.writeSync(fd, summaries);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(tmp, file);
      this.stats.wrote = true;
    } catch (err) {
      try {
        fs.rmSync(tmp, { force: true });
      } catch {
        // nothing to clean
      }
      this.notice(`cache not written (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); the scan itself is complete`);
    }
  }

  private oldSummaries: Map<string, FileSummary> | null | undefined;
  private loadOldSummaries(): Map<string, FileSummary> | null {
    if (this.oldSummaries === undefined) this.oldSummaries = this.old ? this.old.summaries() : null;
    return this.oldSummaries;
  }

  private stat(rel: string): fs.Stats | null {
    let st = this.statByRel.get(rel);
    if (st === undefined) {
      try {
        st = fs.statSync(path.join(this.root, rel));
      } catch {
        st = null;
      }
      this.statByRel.set(rel, st);
    }
    return st;
  }

  /** The entry to keep when `entry` is still valid for `f` (possibly with a fresher stat), else null. */
  private validate(f: SourceFile, entry: Entry): Entry | null {
    if (!validEntry(f.rel, entry)) return null;
    const st = this.stat(f.rel);
    if (!st) return null;
    let result: Entry | null = null;
    const statSame = entry[0] === st.mtimeMs && entry[1] === st.size && entry[2] === st.ino;
    const racy = entry[0] >= (this.old?.scanStart ?? 0) - RACY_MS;
    if (statSame && !racy && !this.verifyAll) {
      result = entry;
    } else {
      let bytes: Buffer;
      try {
        bytes = fs.readFileSync(path.join(this.root, f.rel));
      } catch {
        return null;
      }
      this.stats.hashed++;
      if (sha256(bytes) !== entry[3]) return null;
      result = statSame && !racy ? entry : [st.mtimeMs, st.size, st.ino, entry[3], entry[4]];
    }
    for (const [dep, size] of result[4].deps ?? []) {
      if (pathState(path.join(this.root, dep)) !== size) return null;
    }
    return result;
  }
}

export function sha256(bytes: Uint8Array): string {
  return crypto.createHash('sha256').update(bytes).digest('hex');
}

function readPack(file: string): Pack | null {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return null; // no cache yet
  }
  try {
    const size = fs.fstatSync(fd).size;
    const head = Buffer.alloc(HEAD);
    if (size < HEAD || fs.readSync(fd, head, 0, HEAD, 0) !== HEAD) return null;
    if (!head.subarray(0, MAGIC.length).equals(MAGIC)) return null;
    const indexLen = head.readUInt32LE(MAGIC.length);
    const summariesLen = head.readUInt32LE(MAGIC.length + 4);
    if (HEAD + indexLen + summariesLen !== size) return null; // truncated or grown: not ours
    const indexBuf = Buffer.alloc(indexLen);
    if (fs.readSync(fd, indexBuf, 0, indexLen, HEAD) !== indexLen) return null;
    if (!crypto.createHash('sha256').update(indexBuf).digest().equals(head.subarray(MAGIC.length + 8, MAGIC.length + 40))) return null;
    const summariesDigest = Buffer.from(head.subarray(MAGIC.length + 40, HEAD));
    const p = v8.deserialize(indexBuf) as Record<string, unknown>;
    if (
      !p || typeof p !== 'object' || p.format !== FORMAT || typeof p.scanStart !== 'number' ||
      typeof p.fileKey !== 'string' || typeof p.contextKey !== 'string' || !Array.isArray(p.files)
    ) {
      return null;
    }
    const files = new Map<string, Entry>();
    for (const item of p.files as unknown[]) {
      if (Array.isArray(item) && item.length === 2 && typeof item[0] === 'string') files.set(item[0], item[1] as Entry);
    }
    const context = p.context && typeof p.context === 'object' && typeof (p.context as ProjectContext).root === 'string' ? (p.context as ProjectContext) : null;
    const r = p.repo as Pack['repo'];
    const repo = r && typeof r === 'object' && typeof r.key === 'string' && r.result && typeof r.result === 'object' ? r : null;
    const summariesAt = HEAD + indexLen;
    const summaries = (): Map<string, FileSummary> | null => {
      try {
        const buf = fs.readFileSync(file).subarray(summariesAt);
        if (buf.length !== summariesLen || !crypto.createHash('sha256').update(buf).digest().equals(summariesDigest)) return null;
        const list = v8.deserialize(buf) as unknown;
        if (!Array.isArray(list)) return null;
        const map = new Map<string, FileSummary>();
        for (const item of list) if (Array.isArray(item) && typeof item[0] === 'string') map.set(item[0], item[1] as FileSummary);
        return map;
      } catch {
        return null;
      }
    };
    return { format: FORMAT, scanStart: p.scanStart, fileKey: p.fileKey, contextKey: p.contextKey, context, files, repo, summaries };
  } catch {
    return null; // corrupt: start afresh
  } finally {
    fs.closeSync(fd);
  }
}

/** The shape a cached entry must have before anything in it is used. */
function validEntry(rel: string, e: unknown): e is Entry {
  if (!Array.isArray(e) || e.length !== 5) return false;
  const [mtime, size, ino, hash, o] = e as unknown[];
  if (typeof mtime !== 'number' || typeof size !== 'number' || typeof ino !== 'number') return false;
  if (typeof hash !== 'string' || !/^[0-9a-f]{64}$/.test(hash)) return false;
  if (!o || typeof o !== 'object') return false;
  const out = o as Record<string, unknown>;
  if (out.path !== rel || typeof out.lines !== 'number' || typeof out.bytes !== 'number' || typeof out.parseError !== 'boolean') return false;
  if (!Array.isArray(out.findings) || !Array.isArray(out.internalErrors)) return false;
  if (out.findings.some((x) => !x || typeof x !== 'object' || (x as { path?: unknown }).path !== rel)) return false;
  if (out.summary !== undefined && (!out.summary || typeof out.summary !== 'object' || (out.summary as { path?: unknown }).path !== rel)) return false;
  if (out.deps !== undefined && !(Array.isArray(out.deps) && out.deps.every((d) => Array.isArray(d) && typeof d[0] === 'string' && typeof d[1] === 'number'))) return false;
  return true;
}

let toolHashMemo: string | null = null;

/**
 * The tool version plus a hash of the compiled code (every `.js` under `dist/src`) and the
 * grammar/binding versions, so a rebuilt analyzer never trusts outcomes of the previous build,
 * even at the same version.
 */
export function toolFingerprint(): string {
  if (toolHashMemo) return toolHashMemo;
  const h = crypto.createHash('sha256').update(TOOL_VERSION);
  const srcDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const visit = (dir: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) visit(p);
      else if (e.name.endsWith('.js') || e.name.endsWith('.wasm') || e.name.endsWith('.json')) {
        try {
          h.update(e.name).update(fs.readFileSync(p));
        } catch {
          // unreadable: leave it out
        }
      }
    }
  };
  visit(srcDir);
  // The grammar and the bindings shape the trees: their versions are part of the tool.
  const require = createRequire(import.meta.url);
  for (const pkg of ['tree-sitter-python', 'tree-sitter', 'web-tree-sitter']) {
    try {
      h.update(`${pkg}@${(require(`${pkg}/package.json`) as { version?: string }).version ?? '?'}`);
    } catch {
      h.update(`${pkg}@absent`);
    }
  }
  return (toolHashMemo = h.digest('hex'));
}
