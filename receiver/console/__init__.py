"""The operator console under ``/ops/console``: Starlette + Jinja2, no front-end build."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from . import pages


def routes() -> list[BaseRoute]:
    get, post, both = ["GET"], ["POST"], ["GET", "POST"]
    return [
        Route("/", pages.home, methods=get),
        Route("/login", pages.login, methods=both),
        Route("/logout", pages.logout, methods=post),
        Route("/runs", pages.runs_page, methods=get),
        Route("/runs/{id}", pages.run_page, methods=get),
        Route("/runs/{id}/{action:str}", pages.run_decision, methods=post),
        Route("/start", pages.start_page, methods=both),
        Route("/events", pages.inbox_page, methods=get),
        Route("/events/{id}", pages.event_page, methods=get),
        Route("/events/{id}/replay", pages.event_replay, methods=post),
        Route("/objects", pages.object_search, methods=get),
        Route("/objects/{kind}/{key}", pages.object_page, methods=get),
        Route("/objects/{kind}/{key}/sync", pages.object_sync, methods=post),
    ]
