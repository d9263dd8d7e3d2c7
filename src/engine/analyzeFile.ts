/**
 * The per-file phase for one file: read, reject what is not auditable, parse once, build the
 * semantic model, run every enabled file rule on it, and summarise it for the repo phase. Test
 * files stop after the read.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { SyntaxNode } from '../parse/parser.js';
import type { PythonParser } from '../parse/parser.js';
import type { ProjectContext } from '../discovery/context.js';
import type { ImportPrefix } from '../semantic/importRoots.js';
import { buildFileModel, isTestPath, markProjectViews, MODEL_NODE_TYPES, type FileModel } from '../semantic/model.js';
import { summarize } from '../analysis/summary.js';
import { collectEffects } from '../analysis/effects.js';
import { EFFECT_COLLECTORS, SITE_KINDS } from '../rules/python/effectCollectors.js';
import { classifyDbCall } from '../rules/python/query/dbCalls.js';
import type { FileRule, Location, RuleReport } from '../rules/types.js';
import { nodeLocation } from '../rules/types.js';
import { EXECUTION_CONTEXT_CHECKS, executionContextEvidence } from '../merge/executionContext.js';
import { projectIndex } from '../rules/projectFacts.js';
import { fileSessionsAutoflush } from '../semantic/sessionExpiry.js';
import type { FileOutcome, RawFinding, StageMs } from '../pool/protocol.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

export interface AnalyzeOptions {
  timings?: boolean;
  /** Absolute root, for Rule 6's small-file evidence. */
  rootDir?: string;
  /** Set `outcome.hash` (sha256 of the bytes read) for the incremental cache. */
  hash?: boolean;
  /** The tree's module names: the summary then keeps only calls the repo phase can use. */
  repoModules?: ReadonlySet<string>;
  /** Where the file's absolute imports start (semantic/importRoots.ts). */
  importPrefix?: ImportPrefix;
}

export function analyzeFile(
  rel: string,
  abs: string,
  parser: PythonParser,
  rules: readonly FileRule[],
  project: ProjectContext,
  options: AnalyzeOptions = {},
): FileOutcome {
  const outcome: FileOutcome = { path: rel, lines: 0, bytes: 0, parseError: false, findings: [], internalErrors: [] };
  const stage: StageMs | undefined = options.timings ? { read: 0, parse: 0, model: 0, classify: 0, rules: 0, summary: 0 } : undefined;
  let tick = stage ? performance.now() : 0;
  const lap = (key: keyof StageMs) => {
    if (!stage) return;
    const now = performance.now();
    stage[key] += now - tick;
    tick = now;
  };
  if (stage) outcome.stageMs = stage;
  const source = readSource(rel, abs, outcome, options.hash ?? false);
  if (source === null) return outcome;
  lap('read');
  // Test code is never flagged, and no rule or summary of other files needs its syntax: it is
  // counted (files, lines) and not parsed. Test files are over half the bytes of many real
  // trees (62 % of CPython's library, 43-58 % of the field repositories).
  if (isTestPath(rel)) return outcome;

  const tree = parser.parse(source);
  lap('parse');
  try {
    const root = tree.rootNode;
    outcome.parseError = root.hasError;
    const model = buildFileModel(rel, source, root, parser, options.importPrefix);
    model.modelClasses = projectIndex(project).modelClasses;
    model.modelModules = projectIndex(project).modelModules;
    model.flaskDbHandles = projectIndex(project).flaskDbHandles;
    model.flaskSessionAliases = projectIndex(project).flaskSessionAliases;
    model.scopedSessions = projectIndex(project).scopedSessions;
    model.dynamicRelations = projectIndex(project).dynamicRelations;
    model.projectHandles = projectIndex(project).projectHandles;
    if (projectIndex(project).autoflushOff && !fileSessionsAutoflush(project, rel)) model.autoflushOff = true;
    model.dependencyAliases = project.dependencyAliases ?? [];
    if (options.repoModules) model.repoModules = options.repoModules;
    if (project.viewClasses?.length) markProjectViews(model, projectIndex(project).viewClasses);
    lap('model');
    // Every call in a function of a non-test file is classified by the summary's query effects
    // anyway; classifying them first costs nothing more and keeps that shared cost out of the
    // per-rule times (else the first rule to ask pays it all: PA104 showed 5.7 s of 20.6 s).
    if (!model.isTestFile) for (const call of model.calls) if (call.functionIndex >= 0) classifyDbCall(model, call);
    lap('classify');
    const ruleMs: Record<string, number> | undefined = options.timings ? {} : undefined;
    if (!model.isTestFile) {
      for (const rule of rules) {
        const t0 = ruleMs ? performance.now() : 0;
        try {
          rule.checkFile({ model, project, report: (r) => addFinding(outcome, model, rule, r, options.rootDir ?? project.root) });
        } catch (err) {
          outcome.internalErrors.push({ path: rel, rule: rule.meta.code, message: (err as Error).message });
        }
        if (ruleMs) ruleMs[rule.meta.code] = (ruleMs[rule.meta.code] ?? 0) + performance.now() - t0;
      }
    }
    lap('rules');
    try {
      outcome.summary = summarize(model, collectEffects(model, EFFECT_COLLECTORS, project), options.repoModules, SITE_KINDS);
    } catch (err) {
      outcome.internalErrors.push({ path: rel, rule: 'summary', message: (err as Error).message });
    }
    lap('summary');
    if (ruleMs) outcome.ruleMs = ruleMs;
  } finally {
    tree.release();
  }
  return outcome;
}

/**
 * The cost floor of one file, for `bench`: the same read and decode as {@link analyzeFile},
 * then (mode `parse`) one parse whose tree is touched once and released, and (mode `walk`) the
 * semantic model's one batch of nodes fetched from the tree: what any analysis through the
 * binding pays before it computes anything.
 */
export function floorFile(rel: string, abs: string, parser: PythonParser | null, walk = false): FileOutcome {
  const outcome: FileOutcome = { path: rel, lines: 0, bytes: 0, parseError: false, findings: [], internalErrors: [] };
  const source = readSource(rel, abs, outcome, false);
  if (source === null || !parser) return outcome;
  const tree = parser.parse(source);
  try {
    outcome.parseError = tree.rootNode.hasError;
    if (walk) tree.rootNode.descendantsOfType(MODEL_NODE_TYPES);
  } finally {
    tree.release();
  }
  return outcome;
}

/** Reads and decodes a file; null (with `outcome.skipped` set) when it is not auditable. */
function readSource(rel: string, abs: string, outcome: FileOutcome, hash: boolean): string | null {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(abs);
  } catch (err) {
    outcome.skipped = { path: rel, reason: `unreadable (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` };
    return null;
  }
  outcome.bytes = bytes.length;
  if (hash) outcome.hash = createHash('sha256').update(bytes).digest('hex');
  if (bytes.indexOf(0) !== -1) {
    outcome.skipped = { path: rel, reason: 'binary file (contains NUL bytes)' };
    return null;
  }
  let source: string;
  try {
    source = utf8.decode(bytes);
  } catch {
    outcome.skipped = { path: rel, reason: 'not valid UTF-8' };
    return null;
  }
  if (source.charCodeAt(0) === 0xfeff) source = source.slice(1);
  outcome.lines = countLines(source);
  return source;
}

function countLines(source: string): number {
  if (source.length === 0) return 0;
  let n = 1;
  let i = -1;
  while ((i = source.indexOf('\n', i + 1)) !== -1) n++;
  if (source.endsWith('\n')) n--;
  return n;
}

function addFinding(outcome: FileOutcome, model: FileModel, rule: FileRule, r: RuleReport, rootDir: string): void {
  const loc: Location | undefined = r.node ? nodeLocation(r.node) : r.location;
  if (!loc) throw new Error(`rule ${rule.meta.code} reported without a location`);
  const firstLine = r.node ? statementFirstLine(r.node) : loc.line;
  if (isSuppressed(model.suppressions, rule.meta.code, [loc.line, firstLine, loc.endLine])) return;
  const finding: RawFinding = {
    code: rule.meta.code,
    path: model.path,
    line: loc.line,
    column: loc.column,
    endLine: loc.endLine,
    endColumn: loc.endColumn,
    severity: r.severity ?? rule.meta.severity,
    message: r.message,
    lineText: lineAt(model.source, loc.line),
    inHandler: r.node ? inHandler(model, r.node) : false,
  };
  if (r.node && EXECUTION_CONTEXT_CHECKS.has(rule.meta.check)) {
    const evidence = executionContextEvidence(model, r.node, rootDir);
    if (evidence.length) finding.evidence = evidence;
    recordPathDeps(outcome, model, r.node, rootDir);
  }
  if (r.recommendation) finding.recommendation = r.recommendation;
  if (r.advisory) finding.advisory = r.advisory;
  if (r.lowInBackground) finding.lowInBackground = true;
  if (r.failure) finding.failure = true;
  const fn = r.function ?? enclosingFunctionName(model, loc.line, r.node);
  if (fn) finding.function = fn;
  if (r.chain) finding.chain = r.chain;
  if (r.sameDefectAs) finding.sameDefectAs = r.sameDefectAs;
  if (r.rolledBackAtTeardown) finding.rolledBackAtTeardown = r.rolledBackAtTeardown;
  outcome.findings.push(finding);
}

/**
 * Rule 6's small-file evidence stats the path named by the flagged call's first string
 * argument (against the root and the file's directory): the outcome depends on those paths,
 * so the cache records what they were. Mirrors `smallDataEvidence` in merge/executionContext.
 */
function recordPathDeps(outcome: FileOutcome, model: FileModel, node: SyntaxNode, rootDir: string): void {
  if (node.type !== 'call') return;
  const first = node.childForFieldName('arguments')?.namedChild(0);
  if (first?.type !== 'string' || first.text.startsWith('f')) return;
  const literal = first.text.replace(/^[rbuRBU]*("""|'''|"|')/, '').replace(/("""|'''|"|')$/, '');
  const root = path.resolve(rootDir);
  for (const base of [rootDir, path.join(rootDir, path.dirname(model.path))]) {
    const candidate = path.resolve(base, literal);
    if (!candidate.startsWith(root)) continue;
    outcome.deps ??= [];
    outcome.deps.push([path.relative(root, candidate).replace(/\\/g, '/'), pathState(candidate)]);
  }
}

/** A dependency's state: its size when it is a regular file, else -1. */
export function pathState(abs: string): number {
  try {
    const st = fs.statSync(abs);
    return st.isFile() ? st.size : -1;
  } catch {
    return -1;
  }
}

export function isSuppressed(suppressions: Map<number, Set<string>>, code: string, lines: number[]): boolean {
  for (const line of lines) {
    const codes = suppressions.get(line);
    if (codes && (codes.has('*') || codes.has(code))) return true;
  }
  return false;
}

function inHandler(model: FileModel, node: SyntaxNode): boolean {
  for (const fn of model.functions) {
    if (fn.role === 'handler' && node.startIndex >= fn.node.startIndex && node.endIndex <= fn.node.endIndex) return true;
  }
  return false;
}

function statementFirstLine(node: SyntaxNode): number {
  let n: SyntaxNode | null = node;
  while (n?.parent && n.parent.type !== 'block' && n.parent.type !== 'module') n = n.parent;
  return (n ?? node).startPosition.row + 1;
}

function lineAt(source: string, line: number): string {
  let start = 0;
  for (let i = 1; i < line; i++) {
    const nl = source.indexOf('\n', start);
    if (nl === -1) return '';
    start = nl + 1;
  }
  const end = source.indexOf('\n', start);
  return source.slice(start, end === -1 ? undefined : end).trim();
}

function enclosingFunctionName(model: FileModel, line: number, node: SyntaxNode | undefined): string | undefined {
  let best: { name: string; span: number } | undefined;
  for (const fn of model.functions) {
    if (line < fn.startLine || line > fn.endLine) continue;
    if (node && (node.startIndex < fn.node.startIndex || node.endIndex > fn.node.endIndex)) continue;
    const span = fn.endLine - fn.startLine;
    if (!best || span <= best.span) best = { name: fn.name, span };
  }
  return best?.name;
}
