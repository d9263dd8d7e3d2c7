/**
 * What an `except` clause catches, as far as a database error is concerned: the names that a
 * failed statement, flush or commit raises (SQLAlchemy's and the drivers'), and the broad ones
 * that catch them too. Shared by the rules that ask whether a handler deals with a failed
 * statement (PA204) and whether a per-item `try` isolates a failing row (PA105).
 */

/** A class name that catches a database error: SQLAlchemy's and DB-API's, or a broad one. */
const DB_ERROR = /(^|\.)(Exception|BaseException|SQLAlchemyError|DBAPIError|DatabaseError|IntegrityError|OperationalError|DataError|StatementError|InterfaceError|InternalError|ProgrammingError|PendingRollbackError|InvalidRequestError|PostgresError|Error)$/;
/** Names ending like one but that no database call raises. */
const NOT_DB = /^(ValueError|KeyError|TypeError|HTTPError|RequestError|TimeoutError)$/;

/** Does an exception class name (as written: `IntegrityError`, `exc.IntegrityError`) catch database errors? */
export function isDbErrorName(name: string): boolean {
  return DB_ERROR.test(name) && !NOT_DB.test(name);
}

/** Does an `except` clause catch database errors (bare, broad, or a DB exception class)? */
export function catchesDbErrors(handler: { text: string }): boolean {
  const names = caughtNames(handler);
  return names !== null && (names.length === 0 || names.some(isDbErrorName));
}

/**
 * The exception classes an `except` clause names, as written (`sa.exc.IntegrityError`); an empty
 * list for a bare `except:`, null for text that is no `except` clause. `except A or B:` evaluates
 * `A or B` to `A` (a class is truthy): only `A` is caught.
 */
export function caughtNames(handler: { text: string }): string[] | null {
  const header = handler.text.slice(0, handler.text.indexOf(':') >= 0 ? handler.text.indexOf(':') : handler.text.length);
  const m = /^except\*?\s*(.*)$/s.exec(header.trim());
  if (!m) return null;
  const spec = m[1]!.replace(/\s+as\s+\w+\s*$/, '').trim();
  if (spec === '') return [];
  return spec.replace(/^\(|\)$/g, '').split(',').map((x) => x.split(/\s+or\s+/)[0]!.trim()).filter(Boolean);
}

/**
 * Does the clause catch constraint violations only (`except IntegrityError:`, `except
 * (sa.exc.IntegrityError, UniqueViolation) as e:`)? Only a statement that writes raises one.
 */
export function catchesOnlyConstraintViolations(handler: { text: string }): boolean {
  const names = caughtNames(handler);
  return !!names?.length && names.every((n) => /(^|\.)(IntegrityError|UniqueViolation)$/.test(n));
}
