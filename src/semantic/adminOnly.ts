/**
 * Handlers only administrators reach: a page or API a few trusted users open now and then, not
 * what every visitor's request runs. Severity is a claim about production, and a per-row cost
 * there is an admin's wait, not the service's; the execution context (analysis/
 * executionContext.ts) caps such findings.
 *
 * From structure and the frameworks' conventions, never from one project's names:
 * - a decorator that requires the role: `@admins_only`, `@admin_required`, `@superuser_required`,
 *   `@staff_member_required` (Django), `@require_admin`, `@requires_superuser`;
 * - a route of a router or blueprint named for it (`@admin.route(...)`, `@admin_router.get(...)`)
 *   or whose path is under `/admin`;
 * - a dependency or guard that requires it: `Depends(get_current_active_superuser)`,
 *   `dependencies=[Depends(require_admin)]`, Litestar's `guards=[requires_superuser]`, a
 *   parameter `admin: Annotated[User, Depends(get_admin_user)]`;
 * - a method of a class-based view whose base is an admin one (`class RHUsers(RHAdminBase)`);
 * - a check that ends the request first thing in the body
 *   (`if not user.is_superuser: raise HTTPException(403)`, `abort(403)`).
 */
import type { FileModel } from './model.js';
import { classOfFunction, fileClasses } from './classes.js';

const ROLE = String.raw`(?:super_?admins?|admins?|administrators?|superusers?|sysadmins?|staff(?:_members?)?)`;
/** A decorator's name (arguments stripped) that requires the role. */
const ROLE_DECORATOR = new RegExp(String.raw`(?:^|[._])(?:${ROLE}_(?:only|required|access|permission)|(?:require[sd]?|ensure|only)_${ROLE})$`, 'i');
/** A route of a router or blueprint named for the role: `admin.route`, `admin_bp.get`, `sysadmin_router.post` (not `staff`: staff tools are many services' main traffic). */
const ROLE_ROUTER = /(?:^|\.)(?:super_?admin|admin|sysadmin|superuser)(?:_?(?:bp|blueprint|router|api|app|routes|views))?\.(?:route|get|post|put|patch|delete|api_route|websocket)$/i;
/** A route path under `/admin` in the decorator's arguments. */
const ADMIN_PATH = /\(\s*(?:path\s*=\s*)?[rfRF]?["']\/(?:api\/(?:v\d+\/)?)?admin(?:\/|["'])/;
/** The providers, guards and permissions named in a decorator's arguments or a parameter: `Depends(get_current_superuser)`, `guards=[requires_superuser]`. */
const DEPENDENCY_NAMES = /(?:Depends|Security)\(\s*([\w.]+)|guards\s*=\s*\[([^\]]*)\]/g;
/**
 * A provider or guard whose whole name is the role requirement: `get_current_active_superuser`,
 * `require_admin`, `admin_required` — not `get_admin_or_owner`, `get_supabase_admin` (a client),
 * `is_admin` (a bool a handler may test), `get_admin_token`, nor staff (many services' main users).
 */
const PROVIDER_ROLE = String.raw`(?:super_?admins?|admins?|administrators?|superusers?|sysadmins?)`;
const ROLE_PROVIDER = new RegExp(String.raw`^(?:(?:get|require[sd]?|ensure|check|verify|current|active|authenticated|validate)_)*${PROVIDER_ROLE}(?:_(?:user|account|principal|only|required|access|permission|dep|dependency|auth))*$`, 'i');
/** A parameter's annotation that names the role's user type (`CurrentSuperuser`, `AdminUser`); not a model merely called `Admin`. */
const ROLE_ANNOTATION = /^(?:Current)?(?:Super[Uu]ser|AdminUser|SysAdmin|CurrentAdmin)(?:Dep)?$/;
/** A base of a class-based view named for the role: `RHAdminBase`, `AdminView`, `BaseAdminController`. */
const ROLE_BASE = /(?:^|\.)\w*(?:Admin|Superuser|SysAdmin)\w*$/;
const ROLE_FLAG = String.raw`(?:is_(?:super_?)?admin|is_superuser|is_sysadmin|is_staff|sysadmin)`;
/** The flag read as an attribute or a key: `user.is_superuser`, `claims.get("is_admin")`, `user["is_staff"]`. */
const FLAG_READ = String.raw`[\w.]+(?:\.${ROLE_FLAG}|\.get\(\s*["']${ROLE_FLAG}["']\s*(?:,[^()]*)?\)|\[\s*["']${ROLE_FLAG}["']\s*\])`;
/** One negated role check, the whole condition: `not user.is_superuser`, `not request.user.is_staff`, `user.is_admin is False`. */
const DENIES = new RegExp(String.raw`^(?:not\s+\(?\s*${FLAG_READ}\s*\)?|${FLAG_READ}\s*(?:is|==)\s*False)$`);
/** A refusal: an exception, an abort, a 401/403 response. */
const REFUSES = /\b(?:raise|abort)\b|HttpResponseForbidden|\b40[13]\b|PermissionDenied|Forbidden|Unauthorized/;

/** Does any provider or guard the text names require the role by its whole name? */
function requiresRole(text: string): boolean {
  if (!/Depends|Security|guards/.test(text)) return false;
  for (const m of text.matchAll(DEPENDENCY_NAMES)) {
    const names = m[1] !== undefined ? [m[1]] : (m[2] ?? '').split(',');
    for (const n of names) {
      const last = n.trim().split('.').pop() ?? '';
      if (last && !/_or_/.test(last) && ROLE_PROVIDER.test(last)) return true;
    }
  }
  return false;
}

/** Does only an administrator reach function `fnIndex` (a handler, by its own declaration)? */
export function adminOnly(model: FileModel, fnIndex: number): boolean {
  const fn = model.functions[fnIndex]!;
  for (let i = 0; i < fn.decorators.length; i++) {
    const d = fn.decorators[i]!;
    const name = fn.decoratorNames[i] ?? d;
    if (ROLE_DECORATOR.test(name) || ROLE_DECORATOR.test(d.replace(/\(.*$/s, ''))) return true;
    if (ROLE_ROUTER.test(d.replace(/\(.*$/s, ''))) return true;
    if (ADMIN_PATH.test(d) || requiresRole(d)) return true;
  }
  for (const p of fn.params) {
    if (p.defaultText && requiresRole(p.defaultText)) return true;
    const a = p.annotation?.trim();
    if (a && (requiresRole(a) || ROLE_ANNOTATION.test(a))) return true;
  }
  if (fn.className) {
    const cls = classOfFunction(model, fnIndex);
    const info = cls ? fileClasses(model).find((c) => c.name === cls) : undefined;
    if (info?.bases.some((b) => ROLE_BASE.test(b))) return true;
  }
  return endsRequestUnlessAdmin(fn.body);
}

/** Does the body open with a role check that ends the request (`if not user.is_superuser: raise ...`)? */
function endsRequestUnlessAdmin(body: FileModel['functions'][number]['body']): boolean {
  if (!body) return false;
  let seen = 0;
  for (const stmt of body.namedChildren) {
    if (stmt.type === 'comment') continue;
    if (stmt.type === 'expression_statement' && stmt.namedChild(0)?.type === 'string') continue; // docstring
    if (++seen > 3) return false;
    if (stmt.type !== 'if_statement') continue;
    const condition = stmt.childForFieldName('condition');
    const consequence = stmt.childForFieldName('consequence');
    // A denial of everyone else (`if not user.is_superuser: raise ...`), not an early way out for
    // admins (`if user.is_admin: return everything()`) nor a check among others (`and not owner`).
    const refusal = consequence?.namedChildren.find((c) => c.type !== 'comment');
    if (condition && refusal && DENIES.test(condition.text.replace(/\s+/g, ' ').trim()) && (refusal.type === 'raise_statement' || (refusal.type !== 'if_statement' && REFUSES.test(refusal.text)))) return true;
  }
  return false;
}
