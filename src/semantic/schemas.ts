/**
 * Serialization schemas: the classes that turn rows into responses — pydantic models
 * (`class UserOut(BaseModel): posts: list[PostOut]`, FastAPI's `response_model`), marshmallow
 * schemas (`author = fields.Nested(AuthorSchema)`, `class Meta: fields = ("id", "author")`) —
 * and the names of the fields they read from each object. Reading a field whose name is a lazy
 * relationship of the row's model loads it, once per row of a list: an N+1 no loop in the code
 * shows. The facts are per class; the repo phase joins a schema (and its bases) with the rows
 * serialized by it.
 */
import type { SyntaxNode } from '../parse/parser.js';
import { assignmentsTo, resolveName, type FileModel } from './model.js';
import { insideNestedFunction } from './controlFlow.js';

export interface SchemaFacts {
  /** The schema's field names (its output keys), in declaration order. */
  fields: string[];
  /** `[field, attribute]` for fields that read another attribute than their name (`attribute="owner.name"`: `owner`). */
  reads?: [string, string][];
  /** `[field, qualified schema class]` for fields that nest another schema. */
  nested: [string, string][];
}

/** Names inside annotations that are typing constructs, not a nested schema. */
const TYPING_NAMES = new Set(['List', 'Optional', 'Union', 'Sequence', 'Annotated', 'Dict', 'Set', 'FrozenSet', 'Tuple', 'Literal', 'Any', 'Iterable', 'Mapping', 'Field', 'Mapped', 'None', 'UUID', 'Decimal', 'datetime', 'date', 'time', 'HttpUrl', 'EmailStr', 'AnyUrl', 'Json', 'SecretStr', 'Enum']);
const NESTED_VALUE = /\b(?:Nested|Pluck|RelatedList|Related)\s*\(\s*(?:lambda\s*:\s*)?["']?([A-Za-z_][\w.]*)/;
/** Class-body names that configure the schema rather than declare a field. */
const CONFIG_NAMES = /^(model_config|Config|Meta|opts|OPTIONS|__\w+__)$/;

const memo = new WeakMap<FileModel, Map<string, SchemaFacts>>();

/**
 * The file's module-level classes that declare fields, by name (mapped models left out): class
 * body annotations and assignments, and the `fields`/`additional` tuples of an inner `Meta`.
 */
export function schemaFacts(model: FileModel): Map<string, SchemaFacts> {
  let out = memo.get(model);
  if (out) return out;
  out = new Map();
  memo.set(model, out);
  for (const node of model.classes) {
    if (node.parent?.type !== 'module' && node.parent?.parent?.type !== 'module') continue;
    if (insideNestedFunction(node)) continue;
    const name = node.childForFieldName('name')?.text;
    if (!name || name === 'Meta' || name === 'Config' || model.modelClasses.has(name)) continue;
    // `class X(SQLModel, table=True)`: a table, not a schema.
    if (/\btable\s*=\s*True\b/.test(node.childForFieldName('superclasses')?.text ?? '')) continue;
    const facts = classFields(model, node);
    if (facts.fields.length) out.set(name, facts);
  }
  return out;
}

function classFields(model: FileModel, node: SyntaxNode): SchemaFacts {
  const fields: string[] = [];
  const nested: [string, string][] = [];
  const reads: [string, string][] = [];
  const body = node.childForFieldName('body');
  for (const stmt of body?.namedChildren ?? []) {
    if (stmt.type === 'class_definition' && stmt.childForFieldName('name')?.text === 'Meta') {
      for (const inner of stmt.childForFieldName('body')?.namedChildren ?? []) {
        const a = inner.type === 'expression_statement' ? inner.namedChild(0) : null;
        if (a?.type !== 'assignment' || !/^(fields|additional)$/.test(a.childForFieldName('left')?.text ?? '')) continue;
        for (const s of a.childForFieldName('right')?.descendantsOfType('string_content') ?? []) if (/^[A-Za-z_]\w*$/.test(s.text)) fields.push(s.text);
      }
      continue;
    }
    const a = stmt.type === 'expression_statement' ? stmt.namedChild(0) : null;
    if (a?.type !== 'assignment') continue;
    const left = a.childForFieldName('left');
    if (left?.type !== 'identifier' || CONFIG_NAMES.test(left.text) || left.text.startsWith('_')) continue;
    const annotation = a.childForFieldName('type')?.text ?? '';
    if (/\bClassVar\b/.test(annotation)) continue;
    const value = a.childForFieldName('right')?.text ?? '';
    // A marshmallow field reads another attribute (`attribute="owner.name"`): that one's head.
    const attribute = /\battribute\s*=\s*["']([A-Za-z_]\w*)/.exec(value)?.[1];
    fields.push(left.text);
    if (attribute && attribute !== left.text) reads.push([left.text, attribute]);
    const target = NESTED_VALUE.exec(value)?.[1] ?? annotatedSchema(annotation);
    // `attribute="event.category"` nests what the field reads a step further: not followed.
    const deeper = /\battribute\s*=\s*["'][A-Za-z_]\w*\./.test(value);
    if (target && !deeper) nested.push([left.text, resolveName(model, target) ?? `${model.moduleName}.${target}`]);
  }
  return reads.length ? { fields: [...new Set(fields)], reads, nested } : { fields: [...new Set(fields)], nested };
}

/** The class an annotation nests (`list[PostOut]`, `AuthorOut | None`, `Optional["AuthorOut"]`), or null. */
function annotatedSchema(annotation: string): string | null {
  for (const m of annotation.matchAll(/\b([A-Z]\w*(?:\.[A-Z]\w*)*)\b/g)) {
    const name = m[1]!;
    if (!TYPING_NAMES.has(name.replace(/^.*\./, ''))) return name;
  }
  return null;
}

/**
 * The type a FastAPI route declares for its response, whitespace-free: `response_model=` on its
 * decorator wins over the return annotation; null when it declares neither.
 */
export function declaredResponseType(fn: { decorators: readonly string[]; returnType: string | null }): string | null {
  let declared: string | null = null;
  for (const d of fn.decorators) {
    const m = /\bresponse_model\s*=\s*([^,()]+(?:\[[^\]]*\])?)/.exec(d);
    if (m) declared = m[1]!.replace(/\s+/g, '');
  }
  return declared ?? (fn.returnType ? fn.returnType.replace(/\s+/g, '') : null);
}

/**
 * A serializer made for lists (`UserSchema(many=True)`, also `only=`/`exclude=`): the constructor
 * as written and the dump's kind (`dump`, `dump+a,b` for `only=("a", "b")`, `dump-c` for
 * `exclude=("c",)`); null for any other call.
 */
export function manySchemaCall(call: SyntaxNode): { ctor: string; kind: string } | null {
  if (call.type !== 'call') return null;
  const ctor = call.childForFieldName('function');
  const args = call.childForFieldName('arguments');
  if (!ctor || !/^[A-Za-z_][\w.]*$/.test(ctor.text) || !/^[A-Z]/.test(ctor.text.replace(/^.*\./, '')) || !/\bmany\s*=\s*True\b/.test(args?.text ?? '')) return null;
  const only = keywordNames(args, 'only');
  const exclude = keywordNames(args, 'exclude');
  return { ctor: ctor.text, kind: `dump${only ? `+${only.join(',')}` : ''}${exclude ? `-${exclude.join(',')}` : ''}` };
}

/** The string literals of a keyword argument's tuple or list (`only=("a", "b")`), or null when absent. */
function keywordNames(args: SyntaxNode | null, name: string): string[] | null {
  for (const a of args?.namedChildren ?? []) {
    if (a.type !== 'keyword_argument' || a.childForFieldName('name')?.text !== name) continue;
    return a.childForFieldName('value')?.descendantsOfType('string_content').map((s) => s.text) ?? [];
  }
  return null;
}

/**
 * The module's list serializers other modules import (flask-marshmallow's `users_schema =
 * UserSchema(many=True)` in a `schemas.py`): `[name, qualified schema class, kind]` for each
 * module-level name bound once, to a `manySchemaCall`. The repo phase resolves an imported
 * name's `.dump(rows)` / `.jsonify(rows)` through these.
 */
export function schemaInstances(model: FileModel): [string, string, string][] {
  const out: [string, string, string][] = [];
  // Most modules make no list serializer: a text gate before walking the assignments.
  if (model.isTestFile || !/\bmany\s*=\s*True\b/.test(model.source)) return out;
  for (const a of model.assignments) {
    if (a.functionIndex >= 0 || a.fromWith || !a.value || !/^[A-Za-z_]\w*$/.test(a.target)) continue;
    const made = manySchemaCall(a.value);
    if (!made || assignmentsTo(model, a.target).length !== 1) continue;
    out.push([a.target, resolveName(model, made.ctor) ?? `${model.moduleName}.${made.ctor}`, made.kind]);
  }
  return out;
}
