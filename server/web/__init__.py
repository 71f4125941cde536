"""The web door: AtelierService over Connect and gRPC-Web for browsers and other HTTP clients,
files by signed URL, CORS, `/healthz` and the web console at `/`, on a second port of the same
process."""

from __future__ import annotations

from collections.abc import Callable

from server.api import AtelierMethods, FileUrls
from server.config import Settings
from server.domain import GenerationService
from server.web._app import CONNECT_PREFIX, WebApp
from server.web._asgi import App
from server.web._connect import connect_app
from server.web._console import ConsoleApp
from server.web._files import FileRoute
from server.web._server import WebServer

__all__ = ["WebServer", "web_app"]


def web_app(
    methods: AtelierMethods,
    service: GenerationService,
    file_urls: FileUrls | None,
    settings: Settings,
    *,
    serving: Callable[[], bool],
) -> App:
    """The web port's application; `serving` says whether /healthz answers SERVING."""
    routes: list[tuple[str, App]] = [
        (CONNECT_PREFIX, connect_app(methods, max_message_bytes=settings.max_message_bytes))
    ]
    if file_urls is not None:
        routes.append(("/files/", FileRoute(service, file_urls)))
    if settings.web_console:
        routes.append(("/", ConsoleApp()))
    return WebApp(
        routes=routes,
        cors_origins=settings.cors_origin_list,
        max_body_bytes=settings.max_message_bytes,
        serving=serving,
    )
