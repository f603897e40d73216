"""One cold start, run in a fresh interpreter by bench/coldstart.py; prints one JSON line.

``app``: import ``function_app``, index its functions as the worker does, and answer one
``dry_run`` request through the registered ``translate`` function. ``bare``: import only the
libraries the design requires. ``model``: those, plus one pydantic model validating one dict,
the least an app that validates its requests with pydantic does. All run the same way (this file,
same environment), so the difference between them is the project's own cost.
"""

from __future__ import annotations

import json
import resource
import sys
import time

started = time.perf_counter()
mode = sys.argv[1]
sys.path.insert(0, sys.argv[2])  # the project root, as the Azure worker puts it on sys.path
answer: dict[str, object] = {}
if mode == "app":
    import azure.functions as func

    import function_app

    imported = time.perf_counter() - started
    source, body_path, headers = sys.argv[3], sys.argv[4], json.loads(sys.argv[5])
    with open(body_path, "rb") as fh:
        body = fh.read()
    registered = {f.get_function_name(): f for f in function_app.app.get_functions()}
    translate = registered["translate"].get_user_function()
    request = func.HttpRequest(
        method="POST",
        url=f"http://localhost/api/{source}/bench?dry_run=1",
        headers=headers,
        params={"dry_run": "1"},
        route_params={"source": source, "channel": "bench"},
        body=body,
    )
    response = translate(request)
    answer = {
        "status_code": response.status_code,
        "status": json.loads(response.get_body()).get("status"),
        "import_s": imported,
    }
elif mode == "bare":
    import azure.functions
    import jinja2
    import pydantic

    del azure.functions, jinja2, pydantic
elif mode in ("model", "used"):
    # What any app built on these libraries pays before its own code: pydantic's real import (the
    # package loads lazily until a model is defined); ``model`` stops there, the floor of any app
    # that validates its requests with pydantic, and ``used`` adds Jinja's template compiler.
    import azure.functions
    import jinja2
    import pydantic

    class Model(pydantic.BaseModel):
        name: str
        count: int = 0

    Model.model_validate({"name": "x", "count": 1})
    if mode == "used":
        jinja2.Environment(autoescape=True).from_string('{"text": "{{ n.name }}"}').render(n=Model(name="y"))
    del azure.functions
else:
    raise SystemExit(f"unknown mode {mode!r}")

elapsed = time.perf_counter() - started


def peak_rss_kb() -> int:
    """Peak resident memory of this process, in KiB.

    ``VmHWM`` belongs to the memory map exec created, while ``ru_maxrss`` on Linux carries over the
    parent's peak from before exec, which would count the benchmark runner's own memory.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak // 1024 if sys.platform == "darwin" else peak


maxrss_kb = peak_rss_kb()
sys.stdout.write(json.dumps({"in_process_s": elapsed, "maxrss_kb": maxrss_kb, **answer}) + "\n")
