"""The UI's pages for people: checklists to sign off, a person's account, and (admins) the accounts.

Ticks, preferences, TOTP enrolment and account changes are fetch calls to ``/api/v1`` with the
page's CSRF token (``static/people.js``), as every UI action is: one code path, one permission check.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from upkeep.app.people import accounts, checklists
from upkeep.errors import NotFound
from upkeep.web.render import PAGE_SIZE, error_page, page_id, render, require_admin, require_login

router = APIRouter(include_in_schema=False)


def _store(request: Request):
    return request.app.state.store


def _now(request: Request):
    return request.app.state.upkeep.clock.now()


@router.get("/checklists", response_class=HTMLResponse)
def checklists_page(
    request: Request,
    status: str | None = Query(None, max_length=20),
    offset: int = Query(0, ge=0, le=10**9),
) -> Response:
    principal = require_login(request)
    chosen = status if status in checklists.STATUSES else None
    items, total = checklists.list_checklists(
        _store(request), status=chosen, limit=PAGE_SIZE, offset=offset, now=_now(request)
    )
    query = {"status": chosen} if chosen else {}
    return render(
        request,
        "checklists.html",
        principal,
        checklists=items,
        total=total,
        offset=offset,
        limit=PAGE_SIZE,
        query=query,
        statuses=checklists.STATUSES,
        nav="checklists",
    )


@router.get("/checklists/{checklist_id}", response_class=HTMLResponse)
def checklist_page(request: Request, checklist_id: str) -> Response:
    principal = require_login(request)
    try:
        view = checklists.get_checklist(_store(request), page_id(checklist_id, "checklist"), now=_now(request))
    except NotFound as exc:
        return error_page(request, principal, 404, str(exc), nav="checklists")
    can_sign = principal.is_person and principal.can("operator")
    return render(request, "checklist.html", principal, c=view, can_sign=can_sign, nav="checklists")


@router.get("/account", response_class=HTMLResponse)
def account_page(request: Request) -> Response:
    principal = require_login(request)
    user = accounts.get_user(_store(request), principal.user_id) if principal.is_person else None
    zones = _time_zones() if user else []
    return render(request, "account.html", principal, user=user, zones=zones, nav="account")


def _time_zones() -> list[str]:
    from zoneinfo import available_timezones

    return sorted(available_timezones() - {"localtime", "Factory"})


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request) -> Response:
    principal = require_admin(request, "the accounts page", nav="users")
    return render(request, "users.html", principal, users=accounts.list_users(_store(request)), nav="users")
