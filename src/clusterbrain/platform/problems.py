"""RFC 9457 problem responses: the one place errors become HTTP."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from clusterbrain.platform.errors import ClusterBrainError
from clusterbrain.platform.i18n import negotiate, translate

PROBLEM_TYPE_BASE = "https://clusterbrain.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    slug: str,
    instance: str = "",
    language: str = "en",
    **extra: Any,
) -> JSONResponse:
    """A problem response; ``title`` is English source text, translated for the client."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + slug,
        "title": translate(title, language),
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extra.items() if v is not None})
    headers = {"Content-Language": language}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def field_of(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("body", "tags", 0, "name")`` → ``"tags[0].name"``.

    >>> field_of(("body", "tags", 0, "name")), field_of(("query", "from"))
    ('tags[0].name', 'from')
    """
    parts = list(loc)
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def language_of(request: Request) -> str:
    return negotiate(request.headers.get("accept-language"))


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(ClusterBrainError)
    async def _domain(request: Request, exc: ClusterBrainError) -> JSONResponse:
        return problem(
            exc.status,
            exc.title,
            exc.detail,
            slug=exc.type_slug,
            instance=request.url.path,
            language=language_of(request),
            field=exc.field,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": field_of(e.get("loc", ())), "message": e.get("msg", "")} for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": "", "message": "invalid request"}
        return problem(
            422,
            "Invalid input",
            f"{first['field']}: {first['message']}" if first["field"] else first["message"],
            slug="invalid-input",
            instance=request.url.path,
            language=language_of(request),
            field=first["field"] or None,
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "Error")
        return problem(
            exc.status_code,
            title,
            str(exc.detail),
            slug=title.lower().replace(" ", "-"),
            instance=request.url.path,
            language=language_of(request),
        )
