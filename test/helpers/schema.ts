/** JSON Schema validation for the tests, by ajv (draft-07, the dialect the shipped schema uses). */
import AjvModule from 'ajv';

type Schema = Record<string, unknown>;
// ajv is CommonJS; under NodeNext its default export is the module object.
const Ajv = ((AjvModule as unknown as { default?: unknown }).default ?? AjvModule) as new (opts: object) => {
  compile(schema: Schema): ((value: unknown) => boolean) & { errors?: { instancePath: string; message?: string }[] | null };
};
const ajv = new Ajv({ allErrors: true, strict: true });
const compiled = new WeakMap<Schema, ReturnType<typeof ajv.compile>>();

/** Validation errors as `path: message`, empty when `value` is valid. */
export function validate(schema: Schema, value: unknown): string[] {
  let check = compiled.get(schema);
  if (!check) {
    check = ajv.compile(schema);
    compiled.set(schema, check);
  }
  if (check(value)) return [];
  return (check.errors ?? []).map((e) => `${e.instancePath || '/'}: ${e.message ?? 'invalid'}`);
}
