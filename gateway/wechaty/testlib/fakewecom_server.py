"""Runs tests/fakewecom.py's FakeWeCom as a process for the gateway's Node tests.

Prints {"base_url": ...} on its first stdout line; GET /_test/sends lists every accepted send
(kind, body, at). Stops on SIGTERM or when stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

ROOT = Path(os.environ.get("GRIDBOT_ROOT") or Path(__file__).resolve().parents[3])
sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402

from tests.fakewecom import FakeWeCom  # noqa: E402


async def main() -> None:
    fake = FakeWeCom(corp_id=sys.argv[1] if len(sys.argv) > 1 else "wwfakecorp",
                     secret=sys.argv[2] if len(sys.argv) > 2 else "fake-secret")

    async def sends(_request: web.Request) -> web.Response:
        return web.json_response([{"kind": s.kind, "body": s.body, "at": s.at} for s in fake.sends])

    fake.app.router.add_get("/_test/sends", sends)
    base = await fake.start()
    print(json.dumps({"base_url": base}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_reader(sys.stdin.fileno(), lambda: sys.stdin.read(1) or stop.set())
    await stop.wait()
    await fake.close()


if __name__ == "__main__":
    asyncio.run(main())
