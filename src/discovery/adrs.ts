/**
 * Architecture decision records and planned items: id, title, status and the text, kept so
 * that validation can tell when a finding is already a recorded decision.
 */
import { ADR_TEXT_LIMIT, type AdrInfo } from './context.js';
import type { ReadFile } from './manifests.js';

const ADR_DIRS = /^(?:.*\/)?(docs\/adrs?|doc\/adrs?|docs\/decisions|docs\/reference\/adrs)\/(.+\.md)$/i;
const NOT_A_RECORD = /^(readme|index|template|adr-template|_template|toc|summary)\.md$/i;

export function adrFiles(files: string[]): string[] {
  return files
    .filter((f) => {
      if (!ADR_DIRS.test(f)) return false;
      const base = f.slice(f.lastIndexOf('/') + 1);
      return !NOT_A_RECORD.test(base);
    })
    .sort();
}

export function discoverAdrs(files: string[], read: ReadFile): AdrInfo[] {
  const out: AdrInfo[] = [];
  for (const file of adrFiles(files)) {
    const text = read(file);
    if (text === null) continue;
    out.push(adrOf(file, text));
  }
  return out.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
}

function adrOf(file: string, text: string): AdrInfo {
  const base = file.slice(file.lastIndexOf('/') + 1).replace(/\.md$/i, '');
  const body = text.replace(/^---\r?\n[\s\S]*?\r?\n---\r?\n/, (fm) => fm.replace(/[^\n]/g, ' '));
  const heading = /^#{1,2}[ \t]+(.+?)[ \t#]*$/m.exec(body)?.[1]?.trim() ?? base;
  const number =
    /^(?:adr|rfc|dr)[-_ ]?0*(\d+)/i.exec(base)?.[1] ??
    /^0*(\d+)(?=[-_. ]|$)/.exec(base)?.[1] ??
    /^(?:adr|rfc)[-_ :]*0*(\d+)/i.exec(heading)?.[1] ??
    /^0*(\d+)[.:)]\s/.exec(heading)?.[1] ??
    null;
  const id = number !== null ? `ADR-${number.padStart(3, '0')}` : base;
  const title = heading.replace(/^(?:adr|rfc)[-_ ]*\d+\s*[:.\-–—]?\s*/i, '').replace(/^\d+[.:)]\s+/, '').trim() || heading;
  return { id, title, status: statusOf(text), file, text: text.length > ADR_TEXT_LIMIT ? text.slice(0, ADR_TEXT_LIMIT) : text };
}

/** A `Status: Accepted` line (front matter, bold, list) or the first line of a `## Status` section. */
function statusOf(text: string): string | null {
  const line = /^[\s>*_-]*\**status\**\s*[:：]\s*\**\s*(.+?)\s*$/im.exec(text);
  if (line) return clean(line[1]!);
  const section = /^#{1,4}\s*status\s*#*\s*\r?\n+([\s\S]*?)(?:\r?\n\s*\r?\n|\r?\n#|$)/im.exec(text);
  if (section) {
    const first = section[1]!.split(/\r?\n/).map((l) => l.trim()).find((l) => l.length > 0);
    if (first) return clean(first);
  }
  return null;
}

function clean(s: string): string | null {
  const t = s.replace(/[*_`]/g, '').replace(/^[-:\s]+/, '').trim();
  return t || null;
}
