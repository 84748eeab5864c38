"""The REST API (FastAPI): canal's paths and JSON, plus /health and Prometheus /metrics.

canal: ``POST /etl/{type}[/{key}]/{task}`` (``params``, ``;``-separated, from the query or a form
body), ``GET /count/{type}[/{key}]/{task}``, ``GET /destinations``,
``PUT /syncSwitch/{destination}/{status}``, ``GET /syncSwitch/{destination}``.
Bad requests get a 4xx JSON answer, never a stack trace. In multi-node mode an ETL/count for a task
running on another node is forwarded to that node's REST address (one hop, marked with the
``X-Canal-Adapter-Forwarded`` header); if that fails the answer is 409 naming the holder.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from adapter.node.etl import EtlService, NotHere, Reply
from adapter.node.worker import Switch

log = logging.getLogger(__name__)

FORWARDED = "X-Canal-Adapter-Forwarded"
FORWARD_TIMEOUT_S = 3600.0  # an ETL runs synchronously and may take long


class NodeApi(Protocol):
    """What the REST layer needs from the node (the composition root implements it)."""

    node_id: str
    etl: EtlService
    switch: Switch

    def destinations(self) -> list[str]: ...

    def health(self) -> dict[str, Any]: ...

    def metrics(self) -> bytes: ...


def _split_params(raw: str | None) -> list[str]:
    return raw.split(";") if raw else []


async def _params(request: Request) -> list[str]:
    raw = request.query_params.get("params")
    if raw is None and "application/x-www-form-urlencoded" in request.headers.get("content-type", ""):
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        values = form.get("params")
        raw = values[0] if values else None
    return _split_params(raw)


def _forward(request: Request, body: bytes, holder: str) -> Reply:
    url = f"http://{holder}{request.url.path}" + (f"?{request.url.query}" if request.url.query else "")
    headers = {FORWARDED: "1", "Content-Type": request.headers.get("content-type", "application/json")}
    req = urllib.request.Request(url, data=body or None, method=request.method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=FORWARD_TIMEOUT_S) as resp:
            return Reply(resp.status, json.loads(resp.read() or b"null"))
    except urllib.error.HTTPError as e:
        return Reply(e.code, json.loads(e.read() or b"null"))


def create_app(api: NodeApi) -> FastAPI:
    app = FastAPI(title="canal-adapter", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"code": 40000, "message": "bad request", "errors": str(exc.errors())}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"code": exc.status_code * 100, "message": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("REST handler failed", extra={"path": request.url.path})
        return JSONResponse({"code": 50000, "message": f"internal error: {type(exc).__name__}"}, status_code=500)

    def reply(r: Reply) -> JSONResponse:
        return JSONResponse(r.body, status_code=r.status)

    async def placed(request: Request, call: Callable[[], Reply]) -> JSONResponse:
        body = await request.body()
        try:
            return reply(await run_in_threadpool(call))
        except NotHere as e:
            if e.holder is None:
                return JSONResponse({"succeeded": False, "errorMessage": f"no node runs task {e.task_id} right now"},
                                    status_code=503)
            if request.headers.get(FORWARDED):
                return JSONResponse({"succeeded": False, "errorMessage": str(e), "holder": e.holder},
                                    status_code=409)
            try:
                return reply(await run_in_threadpool(_forward, request, body, e.holder))
            except (OSError, ValueError) as fe:
                log.warning("forwarding failed", extra={"holder": e.holder, "error": str(fe)})
                return JSONResponse({"succeeded": False, "errorMessage": f"{e}; forwarding failed: {fe}",
                                     "holder": e.holder}, status_code=409)

    @app.post("/etl/{type}/{task}")
    async def etl(type: str, task: str, request: Request) -> JSONResponse:
        params = await _params(request)
        return await placed(request, lambda: api.etl.etl(type, task, None, params))

    @app.post("/etl/{type}/{key}/{task}")
    async def etl_keyed(type: str, key: str, task: str, request: Request) -> JSONResponse:
        params = await _params(request)
        return await placed(request, lambda: api.etl.etl(type, task, key, params))

    @app.get("/count/{type}/{task}")
    async def count(type: str, task: str, request: Request) -> JSONResponse:
        return await placed(request, lambda: api.etl.count(type, task, None))

    @app.get("/count/{type}/{key}/{task}")
    async def count_keyed(type: str, key: str, task: str, request: Request) -> JSONResponse:
        return await placed(request, lambda: api.etl.count(type, task, key))

    def status_of(dest: str) -> str:
        return "on" if api.switch.is_on(dest) else "off"

    @app.get("/destinations")
    def destinations() -> JSONResponse:
        return JSONResponse([{"destination": d, "status": status_of(d)} for d in api.destinations()])

    @app.put("/syncSwitch/{destination}/{status}")
    def set_switch(destination: str, status: str) -> JSONResponse:
        failed = {"code": 50000, "message": f"实例: {destination} 操作失败"}
        if destination not in api.destinations():
            return JSONResponse({**failed, "error": "unknown destination"}, status_code=404)
        if status not in ("on", "off"):
            return JSONResponse({**failed, "error": "status must be on or off"}, status_code=400)
        try:
            api.switch.set(destination, status == "on")
        except Exception as e:  # ZooKeeper unavailable, for example
            log.warning("sync switch update failed", extra={"destination": destination, "error": str(e)})
            return JSONResponse({**failed, "error": str(e)}, status_code=503)
        log.info("sync switch set", extra={"destination": destination, "status": status})
        verb = "开启" if status == "on" else "关闭"
        return JSONResponse({"code": 20000, "message": f"实例: {destination} {verb}同步成功"})

    @app.get("/syncSwitch/{destination}")
    def get_switch(destination: str) -> JSONResponse:
        if destination not in api.destinations():
            return JSONResponse({"status": "off", "error": "unknown destination"}, status_code=404)
        return JSONResponse({"status": status_of(destination)})

    @app.get("/health")
    def health() -> JSONResponse:
        h = api.health()
        return JSONResponse(h, status_code=200 if h.get("status") == "ok" else 503)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(api.metrics(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return app
