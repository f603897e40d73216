"""Azure Functions entry point (Python v2 programming model). Routing only: the work is in translators/."""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from translators import pipeline, settings

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


def _response(answer: pipeline.Answer) -> func.HttpResponse:
    return func.HttpResponse(
        answer.json(), status_code=answer.status, mimetype="application/json", charset="utf-8"
    )


def _failed() -> func.HttpResponse:
    """Whatever went wrong outside the pipeline, the host still gets a JSON answer to send."""
    return _response(pipeline.internal_error(os.urandom(6).hex()))


@app.function_name("translate")
@app.route(route="{source}/{channel}", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def translate(req: func.HttpRequest) -> func.HttpResponse:
    """POST /api/{source}/{channel}: a platform's webhook, forwarded to one or more ``+``-joined channels."""
    try:
        request = pipeline.Request(
            source=req.route_params.get("source", ""),
            channels=req.route_params.get("channel", ""),
            body=req.get_body(),
            headers=dict(req.headers),
            # From the URL, not req.params: repeated parameters must be seen (a dry run is strict).
            query=tuple(parse_qsl(urlsplit(req.url).query, keep_blank_values=True)),
        )
        return _response(pipeline.handle(request, settings.from_environ()))
    except Exception:
        return _failed()


@app.function_name("health")
@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/health: sources, channels and memory, and what is wrong; never a URL or secret."""
    try:
        return _response(pipeline.health(settings.from_environ()))
    except Exception:
        return _failed()
