/**
 * A minimal JSON Schema (draft-07) validator for the keywords schema/persist-audit.schema.json
 * uses: type, const, enum, required, properties, additionalProperties (boolean), items,
 * minItems, minLength, pattern, minimum, maximum, local $ref (`#/definitions/...`).
 * An unknown keyword is an error, so the schema cannot silently outgrow this validator.
 * Stand-in until `ajv` is a dev dependency.
 */
type Schema = Record<string, unknown>;

const KNOWN = new Set([
  '$schema', '$id', 'title', 'description', 'definitions', 'type', 'const', 'enum', 'required', 'properties',
  'additionalProperties', 'items', 'minItems', 'minLength', 'pattern', 'minimum', 'maximum', '$ref',
]);

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function matchesType(v: unknown, t: string): boolean {
  const actual = typeOf(v);
  return actual === t || (t === 'number' && actual === 'integer');
}

export function validate(root: Schema, value: unknown): string[] {
  const errors: string[] = [];
  const resolve = (ref: string): Schema => {
    if (!ref.startsWith('#/')) throw new Error(`unsupported $ref ${ref}`);
    let node: unknown = root;
    for (const part of ref.slice(2).split('/')) node = (node as Schema)[part];
    if (!node) throw new Error(`unresolved $ref ${ref}`);
    return node as Schema;
  };
  const visit = (schema: Schema, v: unknown, at: string): void => {
    for (const k of Object.keys(schema)) if (!KNOWN.has(k)) throw new Error(`validator does not support keyword ${k} (at ${at})`);
    if (typeof schema.$ref === 'string') return visit(resolve(schema.$ref), v, at);
    if (typeof schema.type === 'string' && !matchesType(v, schema.type)) {
      errors.push(`${at}: expected ${schema.type}, got ${typeOf(v)}`);
      return;
    }
    if ('const' in schema && v !== schema.const) errors.push(`${at}: expected ${JSON.stringify(schema.const)}`);
    if (Array.isArray(schema.enum) && !schema.enum.includes(v)) errors.push(`${at}: ${JSON.stringify(v)} not in enum`);
    if (typeof v === 'string') {
      if (typeof schema.minLength === 'number' && v.length < schema.minLength) errors.push(`${at}: shorter than ${schema.minLength}`);
      if (typeof schema.pattern === 'string' && !new RegExp(schema.pattern, 'u').test(v)) errors.push(`${at}: ${JSON.stringify(v)} does not match ${schema.pattern}`);
    }
    if (typeof v === 'number') {
      if (typeof schema.minimum === 'number' && v < schema.minimum) errors.push(`${at}: below ${schema.minimum}`);
      if (typeof schema.maximum === 'number' && v > schema.maximum) errors.push(`${at}: above ${schema.maximum}`);
    }
    if (Array.isArray(v)) {
      if (typeof schema.minItems === 'number' && v.length < schema.minItems) errors.push(`${at}: fewer than ${schema.minItems} items`);
      if (schema.items && typeof schema.items === 'object') v.forEach((item, i) => visit(schema.items as Schema, item, `${at}[${i}]`));
    }
    if (typeOf(v) === 'object') {
      const obj = v as Record<string, unknown>;
      const props = (schema.properties ?? {}) as Record<string, Schema>;
      for (const r of (schema.required ?? []) as string[]) if (!(r in obj)) errors.push(`${at}: missing ${r}`);
      for (const [k, val] of Object.entries(obj)) {
        if (props[k]) visit(props[k]!, val, `${at}.${k}`);
        else if (schema.additionalProperties === false) errors.push(`${at}: unexpected property ${k}`);
      }
    }
  };
  visit(root, value, '$');
  return errors;
}
