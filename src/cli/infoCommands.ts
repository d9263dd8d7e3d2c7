/** `rules`, `explain` and `context`: the commands that print what the tool knows. */
import path from 'node:path';
import { ruleCatalog } from '../rules/catalog.js';
import { FAMILY_TITLES } from '../types.js';

export async function runRulesCommand(format: 'text' | 'json'): Promise<number> {
  const metas = await ruleCatalog();
  if (format === 'json') {
    process.stdout.write(JSON.stringify(metas.map((m) => ({ code: m.code, check: m.check, family: m.family, severity: m.severity, effort: m.effort, summary: m.summary })), null, 2) + '\n');
    return 0;
  }
  const lines = metas.map((m) => `${m.code}  ${m.check.padEnd(30)} ${m.family.padEnd(12)} ${m.severity.padEnd(9)} ${m.summary}`);
  process.stdout.write(`CODE   ${'CHECK'.padEnd(30)} ${'FAMILY'.padEnd(12)} ${'SEVERITY'.padEnd(9)} SUMMARY\n${lines.join('\n')}\n`);
  return 0;
}

export async function runExplainCommand(code: string): Promise<number> {
  const meta = (await ruleCatalog()).find((m) => m.code === code.toUpperCase());
  if (!meta) {
    process.stderr.write(`persist-audit: unknown rule code ${code} (see \`persist-audit rules\`)\n`);
    return 2;
  }
  const m = meta;
  const text = [
    `${m.code} ${m.check} (${FAMILY_TITLES[m.family]}, default severity ${m.severity}, effort ${m.effort})`,
    '',
    '## What it does',
    m.what,
    '',
    '## Why is this bad?',
    m.why,
    '',
    '## Example',
    '```python',
    m.bad.trimEnd(),
    '```',
    '',
    '## Use instead',
    '```python',
    m.good.trimEnd(),
    '```',
    '',
    `Fix: ${m.fix}`,
    '',
    '## References',
    ...m.references.map((r) => `- ${r}`),
  ];
  process.stdout.write(text.join('\n') + '\n');
  return 0;
}

export async function runContextCommand(rootArg: string, format: 'json' | 'yaml', parserPref: 'auto' | 'native' | 'wasm'): Promise<number> {
  const { discoverContext } = await import('../discovery/context.js');
  const { walk } = await import('../discovery/walk.js');
  const { createParser } = await import('../parse/parser.js');
  const fs = await import('node:fs');
  const { stringify: toYaml } = await import('yaml');
  const root = path.resolve(rootArg);
  if (!fs.existsSync(root) || !fs.statSync(root).isDirectory()) {
    process.stderr.write(`persist-audit: cannot read ${rootArg}: not a directory\n`);
    return 2;
  }
  const walked = walk(root);
  const parser = await createParser(parserPref, (m) => process.stderr.write(`persist-audit: ${m}\n`));
  const context = await discoverContext(root, [...walked.python.map((f) => f.rel), ...walked.others].sort(), parser);
  process.stdout.write(format === 'yaml' ? toYaml(context) : JSON.stringify(context, null, 2) + '\n');
  return 0;
}
