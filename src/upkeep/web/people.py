"""The UI's pages for people: checklists to sign off, a person's account, and (admins) the accounts.

Ticks, preferences, TOTP enrolment and account changes are fetch calls to ``/api/v1`` with the
page's CSRF token (``static/people.js``), as every UI action is: one code path, one permission check.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from upkeep.errors import NotFound
from upkeep.people import accounts, checklists
from upkeep.web.routes import PAGE_SIZE, _principal, _render, page_id

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
    principal = _principal(request)
    chosen = status if status in checklists.STATUSES else None
    items, total = checklists.list_checklists(
        _store(request), status=chosen, limit=PAGE_SIZE, offset=offset, now=_now(request)
    )
    query = {"status": chosen} if chosen else {}
    return _render(
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
    principal = _principal(request)
    try:
        view = checklists.get_checklist(_store(request), page_id(checklist_id, "checklist"), now=_now(request))
    except NotFound as exc:
        return _render(request, "error.html", principal, status=404, message=str(exc), nav="checklists")
    can_sign = principal.is_person and principal.can("operator")
    return _render(request, "checklist.html", principal, c=view, can_sign=can_sign, nav="checklists")


@router.get("/account", response_class=HTMLResponse)
def account_page(request: Request) -> Response:
    principal = _principal(request)
    user = accounts.get_user(_store(request), principal.user_id) if principal.is_person else None
    zones = _time_zones() if user else []
    return _render(request, "account.html", principal, user=user, zones=zones, nav="account")


def _time_zones() -> list[str]:
    from zoneinfo import available_timezones

    return sorted(available_timezones() - {"localtime", "Factory"})


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request) -> Response:
    principal = _principal(request)
    if not principal.can("admin"):
        return _render(
            request,
            "error.html",
            principal,
            status=403,
            heading="Forbidden",
            message="the accounts page needs the admin role",
            nav="users",
        )
    return _render(request, "users.html", principal, users=accounts.list_users(_store(request)), nav="users")
