"""Dependencies shared by the routers: the service layer and the read-only queries."""

from __future__ import annotations

from fastapi import Request

from upkeep.queries import Queries
from upkeep.service import Upkeep


def get_upkeep(request: Request) -> Upkeep:
    return request.app.state.upkeep


def get_queries(request: Request) -> Queries:
    return request.app.state.queries
