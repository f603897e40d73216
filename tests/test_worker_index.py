"""The Python worker Azure runs for 3.13+ (azure-functions-runtime) indexes function_app.py offline.

This is what the host does at start-up: import the script, find the one FunctionApp, collect its
functions and their bindings. It runs in a fresh interpreter, as the worker does, with the
project root as the working directory and on sys.path.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
from azure_functions_runtime.loader import index_function_app
functions = index_function_app(sys.argv[1] + "/function_app.py")
out = []
for f in functions:
    out.append({
        "name": f.get_function_name(),
        "script": f.function_script_file,
        "bindings": [json.loads(b) for b in f.get_raw_bindings()],
        "http": f.is_http_function(),
    })
print(json.dumps(out))
"""


def test_worker_indexes_function_app_offline() -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}  # no app settings, no network
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(ROOT)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    functions = {f["name"]: f for f in json.loads(proc.stdout.strip().splitlines()[-1])}
    assert set(functions) == {"translate", "health", "outbox", "drain"}
    for name, f in functions.items():
        assert f["http"] is (name != "drain")
        assert f["script"].endswith("function_app.py")
    trigger = next(b for b in functions["translate"]["bindings"] if b["type"] == "httpTrigger")
    assert trigger["route"] == "{source}/{channel}"
    assert trigger["authLevel"].lower() == "function"
    assert [m.upper() for m in trigger["methods"]] == ["POST"]
    health = next(b for b in functions["health"]["bindings"] if b["type"] == "httpTrigger")
    assert (health["route"], health["authLevel"].lower()) == ("health", "anonymous")
    outbox = next(b for b in functions["outbox"]["bindings"] if b["type"] == "httpTrigger")
    assert (outbox["route"], outbox["authLevel"].lower()) == ("outbox/{action?}", "admin"), "master key only"
    timer = next(b for b in functions["drain"]["bindings"] if b["type"] == "timerTrigger")
    assert timer["schedule"] == "0 */1 * * * *"
