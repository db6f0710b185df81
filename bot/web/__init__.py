"""The web side of gridbot: the grid workers' page and the JSON API behind it.

    GET  /dashboard/                 one self-contained page (bot/web/page.py, page.html)
    POST /api/login, /api/logout     a session cookie (HttpOnly, SameSite=Strict)   bot/web/auth.py
    GET  /api/me, /api/health, /api/ledger, /api/ledger.xlsx, /api/escalations, /api/requests,
         /api/residents, /api/quarantines, /api/rates                          bot/web/api.py
    POST /api/escalations/{code}/ack|close, /api/requests/{code}/take|done,
         /api/quarantines, /api/quarantines/{id}/release, /api/checkins (代报)
                                                     (X-CSRF-Token)      bot/web/actions.py

`setup_web(app, runtime)` adds the routes to an existing aiohttp application (bot/app.py).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.web.actions import Actions
from bot.web.api import Api
from bot.web.auth import Auth
from bot.web.page import Page


def setup_web(app: web.Application, runtime: Any) -> None:
    page, auth, api, act = Page(), Auth(runtime), Api(runtime), Actions(runtime)
    app.router.add_get("/dashboard", page.redirect)
    app.router.add_get("/dashboard/", page.handler)
    app.router.add_post("/api/login", auth.login)
    app.router.add_post("/api/logout", auth.logout)
    for path, handler in (("/api/me", api.me), ("/api/health", api.health), ("/api/ledger", api.ledger), ("/api/ledger.xlsx", api.ledger_xlsx),
                          ("/api/escalations", api.escalations), ("/api/requests", api.requests),
                          ("/api/residents", api.residents), ("/api/quarantines", api.quarantines),
                          ("/api/rates", api.rates)):
        app.router.add_get(path, auth.authed(handler))
    for path, handler in (("/api/escalations/{code}/ack", act.ack_escalation),
                          ("/api/escalations/{code}/close", act.close_escalation),
                          ("/api/requests/{code}/take", act.take_request),
                          ("/api/requests/{code}/done", act.finish_request),
                          ("/api/quarantines", act.start_quarantine),
                          ("/api/quarantines/{id}/release", act.release_quarantine),
                          ("/api/checkins", act.staff_report)):
        app.router.add_post(path, auth.authed(handler))
