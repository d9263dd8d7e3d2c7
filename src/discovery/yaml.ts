/**
 * YAML without a word on stderr. The `yaml` library reports warnings (an unresolved tag such as
 * CloudFormation's `!Ref`, a collection used as a mapping key) through `process.emitWarning`,
 * which Node prints raw on stderr in the middle of a scan. Here they come back to the caller,
 * which records them as the project's problems.
 */
import { isCollection, parseDocument, visit } from 'yaml';

/** The value of a YAML text and its warnings, one line each; throws the first error. */
export function parseYamlQuietly(text: string): { value: unknown; warnings: string[] } {
  const doc = parseDocument(text, { logLevel: 'silent' });
  if (doc.errors.length > 0) throw doc.errors[0];
  const warnings = doc.warnings.map((w) => w.message.split('\n')[0]!.trim().replace(/:$/, ''));
  visit(doc, {
    Pair(_, pair) {
      if (!isCollection(pair.key)) return undefined;
      warnings.push('a mapping key is itself a list or mapping; it was read as text');
      return visit.BREAK;
    },
  });
  return { value: doc.toJS(), warnings };
}
