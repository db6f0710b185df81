"""The grid workers' page (网格员工作台): one self-contained file, served with a strict CSP."""

from __future__ import annotations

import base64
import hashlib
import re
from importlib import resources

from aiohttp import web

PAGE_FILE = "page.html"


class Page:
    def __init__(self) -> None:
        self.page = resources.files("bot.web").joinpath(PAGE_FILE).read_text("utf-8")
        self.headers = {
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",
            "Content-Security-Policy": page_csp(self.page),
        }

    async def handler(self, request: web.Request) -> web.Response:
        return web.Response(text=self.page, content_type="text/html", charset="utf-8", headers=self.headers)

    async def redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/dashboard/")


def page_csp(page: str) -> str:
    """A Content-Security-Policy that allows exactly the page's own inline script and style."""

    def hashes(tag: str) -> str:
        found = re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.S)
        return " ".join("'sha256-" + base64.b64encode(hashlib.sha256(b.encode("utf-8")).digest()).decode() + "'"
                        for b in found) or "'none'"

    return (f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
            "connect-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; "
            "frame-ancestors 'none'")
