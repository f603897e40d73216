"""Azure Functions entry point (Python v2 programming model). Routing only: the work is in translators/."""

from __future__ import annotations

import os
import threading
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from translators import pipeline, settings

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

#: How long one timer run drains the outbox: within the minute between runs and host.json's
#: functionTimeout, so that runs never overlap (the host runs a timer function on one instance).
DRAIN_SECONDS = 50


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
    """GET /api/health: sources, channels, memory and the outbox, and what is wrong; never a secret."""
    try:
        return _response(pipeline.health(settings.from_environ()))
    except Exception:
        return _failed()


@app.function_name("outbox")
@app.route(route="outbox/{action?}", methods=["GET", "POST"], auth_level=func.AuthLevel.ADMIN)
def outbox(req: func.HttpRequest) -> func.HttpResponse:
    """The outbox, with the master key: GET lists (``?dead=1`` for dead letters); POST ``replay`` with
    ``{"ids": [...]}`` or ``{"dead": true}``; POST ``drop`` with ``{"ids": [...]}``."""
    try:
        from translators import admin  # only this function needs it

        action = req.route_params.get("action") or ""
        answer = admin.http(req.method, action, dict(req.params), req.get_body(), settings.from_environ())
        return _response(answer)
    except Exception:
        return _failed()


@app.function_name("drain")
@app.timer_trigger(schedule="0 */1 * * * *", arg_name="timer", run_on_startup=False)
def drain(timer: func.TimerRequest) -> None:
    """Every minute: send what the outbox holds, paced and in order, for up to DRAIN_SECONDS."""
    from translators import drainer  # only this function needs it: not on every cold start

    drainer.Drainer(settings.from_environ).run(threading.Event(), seconds=DRAIN_SECONDS)
