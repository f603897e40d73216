"""Azure Functions entry point (Python v2 programming model). Routing only: the work is in translators/."""

from __future__ import annotations

import azure.functions as func

from translators import pipeline

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


def _response(answer: pipeline.Answer) -> func.HttpResponse:
    return func.HttpResponse(
        answer.json(), status_code=answer.status, mimetype="application/json", charset="utf-8"
    )


@app.function_name("translate")
@app.route(route="{source}/{channel}", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def translate(req: func.HttpRequest) -> func.HttpResponse:
    """POST /api/{source}/{channel}: a platform's webhook, forwarded to one or more ``+``-joined channels."""
    request = pipeline.Request(
        source=req.route_params.get("source", ""),
        channels=req.route_params.get("channel", ""),
        body=req.get_body(),
        headers=dict(req.headers),
        query=dict(req.params),
    )
    return _response(pipeline.handle(request))


@app.function_name("health")
@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/health: sources and configured channels with their formats, never their URLs."""
    return _response(pipeline.health())
