"""Dependencies shared by the routers: the application layer and the read-only queries."""

from __future__ import annotations

from fastapi import Request

from upkeep.app import Upkeep
from upkeep.queries import Queries


def get_upkeep(request: Request) -> Upkeep:
    return request.app.state.upkeep


def get_queries(request: Request) -> Queries:
    return request.app.state.queries
