"""The FastAPI app of `lenet serve`: the page, the JSON API and its refusals.

Importing this module imports FastAPI (the ``[serve]`` extra); `lenet serve` checks the extra
first (``runner.check_extra``) and says which package is missing.

Every answer that is not a success is JSON ``{"error": "..."}`` with a 4xx status (a 500 only
for a bug, also as JSON). Bodies are read into memory with a cap and parsed here, multipart
included: Starlette's form parser would spool a large upload to a temporary file, and nothing
from an upload is written to disk. The work on a picture runs in the thread pool, so requests
are answered concurrently.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from lenet_cli import __version__
from lenet_cli.serve.service import MAX_BODY, MAX_SIDE, Refused, Service

STATIC = {"app.js": "text/javascript", "style.css": "text/css"}
_PICTURE_BODY = {
    "required": True,
    "content": {
        "image/png": {"schema": {"type": "string", "format": "binary"}},
        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            }
        },
    },
}
_REFUSALS = {
    400: {"description": "empty, or not a picture Pillow can read"},
    413: {"description": f"over {MAX_BODY:,} bytes, or over {MAX_SIDE}x{MAX_SIDE} pixels"},
    415: {"description": "a Content-Type that is not image/* or multipart/form-data"},
    422: {"description": "no ink in the picture"},
}


def _form_file(body: bytes, content_type: str) -> bytes:
    """The bytes of the multipart form's field ``file``, parsed in memory."""
    boundary = parse_options_header(content_type)[1].get(b"boundary")
    if not boundary:
        raise Refused(400, "the multipart body has no boundary in its Content-Type")
    parts: list[dict[str, Any]] = []
    header = {"field": b"", "value": b""}

    def part_begin() -> None:
        parts.append({"headers": {}, "data": bytearray()})

    def header_field(data: bytes, start: int, end: int) -> None:
        header["field"] += data[start:end]

    def header_value(data: bytes, start: int, end: int) -> None:
        header["value"] += data[start:end]

    def header_end() -> None:
        parts[-1]["headers"][header["field"].lower()] = header["value"]
        header["field"] = header["value"] = b""

    def part_data(data: bytes, start: int, end: int) -> None:
        parts[-1]["data"] += data[start:end]

    callbacks = {
        "on_part_begin": part_begin,
        "on_header_field": header_field,
        "on_header_value": header_value,
        "on_header_end": header_end,
        "on_part_data": part_data,
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except FormParserError as e:
        raise Refused(400, f"the multipart body cannot be parsed: {e}") from None
    for part in parts:
        disposition = parse_options_header(part["headers"].get(b"content-disposition", b""))[1]
        if disposition.get(b"name") == b"file":
            return bytes(part["data"])
    raise Refused(400, "the multipart form has no field 'file': send the picture as 'file'")


async def read_picture(request: Request) -> bytes:
    """The picture's bytes from a raw image body or a multipart form, read with a cap."""
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if not (media.startswith("image/") or media == "multipart/form-data"):
        raise Refused(
            415,
            f"Content-Type {media or '(none)'} is not a picture: send image/png or image/jpeg "
            "bytes, or a multipart form with the picture in the field 'file'",
        )
    length = request.headers.get("content-length", "")
    too_big = f"the body is over {MAX_BODY:,} bytes: scale the picture down"
    if length.isdigit() and int(length) > MAX_BODY:
        raise Refused(413, too_big)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise Refused(413, too_big)
    if media == "multipart/form-data":
        return _form_file(bytes(body), content_type)
    return bytes(body)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _static(name: str) -> str:
    return (resources.files("lenet_cli.serve") / "static" / name).read_text(encoding="utf-8")


def create_app(checkpoint: str | Path | None = None, *, service: Service | None = None) -> FastAPI:
    """The app for a checkpoint (a file or run directory; None: the newest run's best), or for
    a ``Service`` already made."""
    service = service if service is not None else Service.load(checkpoint)
    pages = {name: _static(name) for name in ("index.html", *STATIC)}
    app = FastAPI(
        title="lenet serve",
        version=__version__,
        description="Draw a digit and watch LeNet read it. The API answers with the numbers of "
        "`lenet predict --json` and `lenet activations --json`.",
        redoc_url=None,
    )
    app.state.service = service
    _add_error_handlers(app)
    _add_routes(app, service, pages)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every refusal, routing error and bug answered as JSON ``{"error": ...}``."""

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> JSONResponse:
        return error(exc.status, exc.message)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            message = f"{request.method} is not allowed on {request.url.path}: use {allowed}"
        elif exc.status_code == 404:
            message = f"{request.url.path} is not here: the page is /, the API under /api/"
        else:
            message = str(exc.detail)
        return error(exc.status_code, message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(422, f"the request does not fit the API: {exc.errors()[:1]}")

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        return error(500, f"internal error: {type(exc).__name__} (please report it)")


def _add_routes(app: FastAPI, service: Service, pages: dict[str, str]) -> None:
    """The page, its static files, ``/healthz`` and ``/api/*``."""

    @app.get("/", include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(pages["index.html"])

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in STATIC:
            return error(404, f"/static/{name} is not here")
        return Response(pages[name], media_type=STATIC[name])

    @app.get("/healthz", summary="Whether the server answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/model", summary="The model that answers")
    async def model() -> dict[str, Any]:
        return service.info

    @app.post(
        "/api/predict",
        summary="The digit in a picture, as `lenet predict --json` says it",
        openapi_extra={"requestBody": _PICTURE_BODY},
        responses=_REFUSALS,
    )
    async def predict(request: Request) -> JSONResponse:
        data = await read_picture(request)
        return JSONResponse(await run_in_threadpool(service.predict, data))

    @app.post(
        "/api/activations",
        summary="Every layer's output for a picture, as `lenet activations --json` gives it",
        openapi_extra={"requestBody": _PICTURE_BODY},
        responses=_REFUSALS,
    )
    async def activations(request: Request) -> JSONResponse:
        data = await read_picture(request)
        return JSONResponse(await run_in_threadpool(service.activations, data))
