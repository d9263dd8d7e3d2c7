/**
 * YAML without a word on stderr. The `yaml` library reports warnings (an unresolved tag such as
 * CloudFormation's `!Ref`, a collection used as a mapping key) through `process.emitWarning`,
 * which Node prints raw on stderr in the middle of a scan. Here they come back to the caller,
 * which records them as the project's problems.
 */
import { createRequire } from 'node:module';

type YamlLibrary = typeof import('yaml');
const require = createRequire(import.meta.url);
let library: YamlLibrary | null = null;

/**
 * The library, loaded on first use. Every worker reaches this module (the facts pass imports
 * discovery, which imports the manifest readers) but only the main thread reads YAML: a static
 * import made each worker load the library's ~60 CommonJS modules at start, on the path to its
 * first batch (~40 ms of CPU of the ~300 ms a worker's imports take). `require` resolves the same
 * file as the import did (the package's `node` export, CommonJS either way).
 */
function yaml(): YamlLibrary {
  return (library ??= require('yaml') as YamlLibrary);
}

/** The value of a YAML text and its warnings, one line each; throws the first error. */
export function parseYamlQuietly(text: string): { value: unknown; warnings: string[] } {
  const { isCollection, parseDocument, visit } = yaml();
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
