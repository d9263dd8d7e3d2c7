/**
 * Handlers only administrators reach (semantic/adminOnly.ts), as the summary marks them
 * (`FN_ADMIN`): the frameworks' conventions for requiring the role, and look-alikes that do not.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempTree } from './helpers/tmp.js';
import { createParser } from '../dist/src/parse/parser.js';
import { analyzeFile } from '../dist/src/engine/analyzeFile.js';
import { emptyContext } from '../dist/src/discovery/context.js';
import { FN_ADMIN } from '../dist/src/analysis/objects.js';

const SOURCE = `from flask import Blueprint, abort
from fastapi import APIRouter, Depends
from django.contrib.admin.views.decorators import staff_member_required

from app.auth import admins_only, login_required, get_current_active_superuser, current_user, get_admin_or_owner, get_staffing_service
from app.schemas import Admin
from flask_restful import Resource

admin = Blueprint("admin", __name__)
public = Blueprint("public", __name__)
router = APIRouter()


@admin.route("/stats")
def stats():
    return 1


@public.route("/admin/reset")
def reset():
    return 1


@public.route("/admin-guide")
def guide():
    return 1


@public.route("/pages")
@admins_only
def pages():
    return 1


@public.route("/profile")
@login_required
def profile():
    return 1


@router.get("/users")
def users(user=Depends(get_current_active_superuser)):
    return 1


@router.get("/me")
def me(user=Depends(current_user)):
    return 1


@staff_member_required
def staff_view(request):
    return 1


class AdminResource(Resource):
    pass


class UserList(AdminResource):
    def get(self):
        return 1


class EventList(Resource):
    def get(self):
        return 1


@router.delete("/cache")
def clear_cache(account=Depends(current_user)):
    if not account.is_superuser:
        abort(403)
    return 1


@router.get("/orders/{order_id}")
def order(order_id: int, viewer=Depends(get_admin_or_owner)):
    return 1


@router.get("/shifts")
def shifts(service=Depends(get_staffing_service)):
    return 1


@router.post("/signup")
def signup(admin: Admin):
    return 1


@router.get("/notes")
def notes(account=Depends(current_user), owner: bool = False):
    if not account.is_staff and not owner:
        raise PermissionError()
    return 1


@router.get("/report")
def report(account=Depends(current_user)):
    if not account.is_admin:
        return own_report(account)
    return 1
`;

describe('admin-only handlers', () => {
  it('marks the handlers that require the role, and only those', async () => {
    const dir = tempTree('pa-admin-', { 'app/views.py': SOURCE });
    const parser = await createParser('wasm');
    const summary = analyzeFile('app/views.py', path.join(dir, 'app/views.py'), parser, [], emptyContext(dir)).summary!;
    const admin = summary.functions.filter((f: { flags: number }) => f.flags & FN_ADMIN).map((f: { qualifiedName: string }) => f.qualifiedName).sort();
    expect(admin).toEqual(['UserList.get', 'clear_cache', 'pages', 'reset', 'stats', 'users']);
    // Handlers of the same shapes that any signed-in user reaches are not marked.
    for (const open of ['guide', 'profile', 'me', 'EventList.get', 'order', 'shifts', 'signup', 'notes', 'report']) expect(summary.functions.find((f: { qualifiedName: string }) => f.qualifiedName === open)!.role).toBe('handler');
  });
});
