"""infra/, azure.yaml, .funcignore and the deploy workflow, checked without Azure or the Bicep CLI.

What can be checked here is checked: the Bicep files agree with each other (every module gets the
parameters it requires and only ones it declares), azd's parameter file fills what main.bicep
needs, the app settings infra/ writes are ones the app reads and load without an error into
identity-based Table Storage, secrets never reach an output, and the package .funcignore leaves
holds a working app. What cannot (that Azure accepts the templates) is `azd provision --preview`'s
job: docs/deployment.md says so.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.bicep import Bicep
from translators import settings
from translators.state import connection

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
MAIN = Bicep.read(INFRA / "main.bicep")
API = Bicep.read(INFRA / "app" / "api.bicep")
#: Settings the Functions host and Application Insights read, not the translator.
HOST_SETTINGS = {
    "AzureWebJobsStorage__queueServiceUri",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
}
CLIENT_ID = "6f1c2a53-3c1e-4d0e-9d38-5b2f8f0c7a41"


def local_modules() -> list[tuple[Bicep, str, tuple[str, ...]]]:
    found = []
    for path in sorted(INFRA.rglob("*.bicep")):
        bicep = Bicep.read(path)
        for module in bicep.modules():
            if not module.source.startswith("br/"):
                found.append((bicep, module.source, module.passed))
    return found


def test_every_local_module_gets_what_it_requires_and_nothing_else() -> None:
    modules = local_modules()
    assert {source for _, source, _ in modules} == {"app/api.bicep", "app/rbac.bicep", "app/vault.bicep"}
    for caller, source, passed in modules:
        target = Bicep.read(caller.path.parent / source)
        declared = target.params()
        assert set(passed) <= set(declared), f"{source}: unknown {set(passed) - set(declared)}"
        required = {name for name, has_default in declared.items() if not has_default}
        assert required <= set(passed), f"{source} needs {required - set(passed)}"


def test_registry_modules_are_pinned_avm_versions() -> None:
    for module in MAIN.modules():
        if module.source.startswith("br/"):
            assert re.fullmatch(r"br/public:avm/res/[a-z0-9/-]+:\d+\.\d+\.\d+", module.source), module.source


def test_azd_fills_every_parameter_main_bicep_requires() -> None:
    given = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    declared = MAIN.params()
    assert set(given) <= set(declared)
    assert {name for name, has_default in declared.items() if not has_default} <= set(given)
    # Secrets come from azd's environment (`azd env set`), never from a value in the repository.
    assert given["channels"]["value"] == "${CHANNELS}"
    assert given["webhookToken"]["value"] == "${WEBHOOK_TOKEN}"
    assert given["bitriseApiToken"]["value"] == "${BITRISE_API_TOKEN}"
    assert given["slackBotToken"]["value"] == "${SLACK_BOT_TOKEN}"
    assert given["secrets"]["value"] == "${SECRETS}"
    assert {"channels", "webhookToken", "bitriseApiToken", "slackBotToken", "secrets"} <= MAIN.secure_params()


def test_no_output_carries_a_secret() -> None:
    for path in sorted(INFRA.rglob("*.bicep")):
        bicep = Bicep.read(path)
        secure = bicep.secure_params()
        for name, expression in bicep.outputs().items():
            assert not re.search(r"listKeys|ConnectionString|\.value\b|primaryKey", expression), (path, name)
            for param in secure:
                uses = re.findall(rf"\b{param}\b", expression)
                tested = re.findall(rf"empty\({param}\)", expression)
                assert len(uses) == len(tested), f"{path.name}: output {name} shows {param}"
    for output in ("channelSecrets", "settingSecrets"):
        vault = Bicep.read(INFRA / "app" / "vault.bicep").outputs()[output]
        assert set(re.findall(r"^\s*(\w+):", vault, re.MULTILINE)) == {"setting", "secret"}, output


def test_secret_settings_go_to_key_vault_and_reach_the_app_as_references() -> None:
    """SECRETS (a webhook's signing secret, the App Store Connect key) take the channels' way."""
    vault = Bicep.read(INFRA / "app" / "vault.bicep")
    assert "secrets" in vault.secure_params()
    assert re.search(r"for item in settingList:", vault.raw) and re.search(r"value:\s*item\.value", vault.raw)
    assert re.search(r"settingSecrets:\s*vault\.outputs\.settingSecrets", MAIN.raw)
    assert re.search(r"SecretName=\$\{item\.secret\}", API.raw)
    union = re.search(r"properties:\s*union\(([^)]*)\)", API.raw)
    assert union is not None and union[1].split(", ")[-1] == "baseSettings", "infra's own settings win"
    assert "secretSettings" in union[1]


def test_storage_allows_no_shared_key_and_the_app_uses_its_identity() -> None:
    storage = next(m for m in MAIN.modules() if m.name == "storage")
    assert "allowSharedKeyAccess" in storage.passed
    assert re.search(r"allowSharedKeyAccess:\s*false", MAIN.raw)
    assert re.search(r"name:\s*'FC1'", MAIN.raw) and re.search(r"tier:\s*'FlexConsumption'", MAIN.raw)
    assert re.search(r"name:\s*'python'\s*\n\s*version:\s*'3\.13'", API.raw)
    assert re.search(r"keyVaultReferenceIdentity:\s*identityId", API.raw)
    assert re.search(r"type:\s*'UserAssigned'", API.raw)
    rbac = Bicep.read(INFRA / "app" / "rbac.bicep").raw
    for role in ("blobDataOwner", "queueDataContributor", "tableDataContributor", "keyVaultSecretsUser"):
        assert re.search(rf"\b{role}\b", code_of(rbac).split("var storageRoles", 1)[1]), role


def code_of(text: str) -> str:
    from tests.bicep import code

    return code(text)


def infra_settings() -> dict[str, str]:
    """The app settings api.bicep writes, with values of the shape Azure fills in."""
    endpoints = {
        "AzureWebJobsStorage__blobServiceUri": "https://stabc123.blob.core.windows.net/",
        "AzureWebJobsStorage__queueServiceUri": "https://stabc123.queue.core.windows.net/",
        "AzureWebJobsStorage__tableServiceUri": "https://stabc123.table.core.windows.net/",
    }
    values: dict[str, str] = {}
    for name in API.object_keys("baseSettings"):
        literal = re.search(rf"^\s*{name}:\s*'([^'$]*)'", API.raw, re.MULTILINE)
        if name in endpoints:
            values[name] = endpoints[name]
        elif name.endswith("__clientId"):
            values[name] = CLIENT_ID
        elif literal:
            values[name] = literal[1]
        else:
            values[name] = f"<{name} as Azure fills it>"
    # Key Vault references, resolved by the platform before the app sees them.
    assert re.search(r"WEBHOOK_TOKEN:\s*'@Microsoft\.KeyVault\(", API.raw)
    values["WEBHOOK_TOKEN"] = "resolved-from-key-vault"
    assert re.search(r"BITRISE_API_TOKEN:\s*'@Microsoft\.KeyVault\(", API.raw)
    values["BITRISE_API_TOKEN"] = "resolved-from-key-vault"
    assert re.search(r"SLACK_BOT_TOKEN:\s*'@Microsoft\.KeyVault\(", API.raw)
    values["SLACK_BOT_TOKEN"] = "xoxb-resolved-from-key-vault"
    assert (
        re.search(r"channel\.setting", API.raw)
        and "'CHANNEL_${" in (INFRA / "app" / "vault.bicep").read_text()
    )
    values["CHANNEL_BUILDS_URL"] = "https://hooks.slack.com/services/T0/B0/resolvedfromkeyvault"
    return values


def test_the_settings_infra_writes_load_into_identity_based_table_storage() -> None:
    env = infra_settings()
    loaded = settings.load(env)
    assert loaded.errors == {} and loaded.channel_errors == {}
    assert loaded.app.state_store == "tables" and list(loaded.channels) == ["builds"]
    target = connection.resolve(loaded.app)
    assert (target.credential, target.client_id) == ("managed_identity", CLIENT_ID)
    assert target.endpoint == "https://stabc123.table.core.windows.net"


def test_every_setting_infra_writes_is_one_something_reads() -> None:
    for name in infra_settings():
        known = name in settings.APP_SETTING_NAMES or name.startswith("CHANNEL_") or name in HOST_SETTINGS
        assert known, f"infra/app/api.bicep sets {name}, which nothing reads"


def test_every_setting_the_app_reads_is_set_by_infra_or_may_be_left_unset() -> None:
    written = set(infra_settings())
    for name, field in settings.AppSettings.model_fields.items():
        alias = field.alias or name
        assert alias in written or not field.is_required(), f"{alias} must be set by infra/"
    # The ones infra/ must set for Azure, whatever their defaults: storage by identity, no file.
    assert {"STATE_STORE", "AzureWebJobsStorage__credential", "AzureWebJobsStorage__clientId"} <= written


def test_azure_yaml_deploys_this_folder_as_the_python_function_app() -> None:
    config = yaml.safe_load((ROOT / "azure.yaml").read_text())
    service = config["services"]["api"]
    hooks = service.pop("hooks")
    assert service == {"project": ".", "language": "python", "host": "function"}
    # The package ships its bytecode (test_the_package_starts_from_its_bytecode_without_compiling).
    assert hooks["prepackage"]["posix"]["run"] == "tools/package-bytecode"
    assert os.access(ROOT / "tools" / "package-bytecode", os.X_OK)
    assert (
        config["infra"]["path"] == "infra"
        and (ROOT / "infra" / f"{config['infra']['module']}.bicep").exists()
    )
    assert re.search(r"'azd-service-name':\s*'api'", API.raw), "the app's tag names azure.yaml's service"


def test_the_workflow_signs_in_with_oidc_and_deploys_with_functions_action() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())
    deploy = workflow["jobs"]["deploy"]
    assert deploy["needs"] == "test" and deploy["permissions"]["id-token"] == "write"
    steps = {step.get("uses", "").split("@")[0]: step for step in deploy["steps"]}
    login = steps["azure/login"]["with"]
    assert set(login) == {"client-id", "tenant-id", "subscription-id"}  # no secret: a federated credential
    action = steps["Azure/functions-action"]["with"]
    assert action["respect-funcignore"] is True and action["sku"] == "flexconsumption"
    runs = [step.get("run", "") or step.get("uses", "") for step in deploy["steps"]]
    assert runs.index("tools/package-bytecode") < runs.index(next(r for r in runs if "functions-action" in r))
    assert str(steps["actions/setup-python"]["with"]["python-version"]) == "3.13"  # Azure's bytecode
    assert "make test" in json.dumps(workflow["jobs"]["test"])


# -- the package ----------------------------------------------------------------------------------


def packaged(tmp_path: Path) -> list[str]:
    """The repository's files that .funcignore keeps, by git's own gitignore matching."""
    tracked = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    tracked = [name for name in tracked if name and (ROOT / name).is_file()]
    ignored = set(
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--ignored", "--exclude-from=.funcignore"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    return [name for name in tracked if name not in ignored]


def package_copy(tmp_path: Path) -> Path:
    """The files .funcignore keeps, copied into a folder of their own, as the package holds them."""
    package = tmp_path / "package"
    for name in packaged(tmp_path):
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, package / name)
    return package


def test_funcignore_keeps_the_app_and_leaves_out_everything_else(tmp_path: Path) -> None:
    if not (ROOT / ".git").exists():
        pytest.fail("the .funcignore test needs the git checkout")
    files = packaged(tmp_path)
    tops = {name.split("/", 1)[0] for name in files}
    assert tops == {"function_app.py", "host.json", "requirements.txt", "translators", "templates"}, tops
    assert not [name for name in files if name.endswith(".db")]
    scratch = tmp_path / "repo"  # what is not tracked here: a venv, node_modules, local settings
    scratch.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=scratch, check=True)
    shutil.copy(ROOT / ".funcignore", scratch / ".gitignore")
    for name in (
        ".venv/lib/x.py",
        ".venv/lib/__pycache__/x.cpython-313.pyc",
        "tests/__pycache__/t.cpython-313.pyc",
        "node_modules/a/b.js",
        ".state/state.db",
        "local.settings.json",
        ".azure/e/.env",
    ):
        (scratch / name).parent.mkdir(parents=True, exist_ok=True)
        (scratch / name).write_text("x")
    (scratch / "translators" / "__pycache__").mkdir(parents=True)
    (scratch / "translators" / "kept.py").write_text("x")
    (scratch / "translators" / "__pycache__" / "kept.cpython-313.pyc").write_text("x")  # its bytecode
    listed = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard"],
        cwd=scratch,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(listed) == ["translators/__pycache__/kept.cpython-313.pyc", "translators/kept.py"]


def test_the_package_alone_starts_and_indexes_its_functions(tmp_path: Path) -> None:
    """What Azure runs: only the packaged files, indexed as the worker indexes them."""
    from tests.test_worker_index import SCRIPT

    package = package_copy(tmp_path)
    env = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(package)],
        cwd=package,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    names = {f["name"] for f in json.loads(proc.stdout.strip().splitlines()[-1])}
    assert names == {"translate", "health", "outbox", "drain"}
    # The built-in templates and samples travel with it: a message can be rendered from the package.
    render = subprocess.run(
        [sys.executable, "-m", "translators", "render", "appcenter", "slack", "appcenter/build-failed"],
        cwd=package,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert render.returncode == 0, render.stderr
    assert json.loads(render.stdout)["attachments"][0]["blocks"]


def test_the_package_starts_from_its_bytecode_without_compiling(tmp_path: Path) -> None:
    """Azure runs the package read-only: what tools/package-bytecode compiled is all it gets."""
    package = package_copy(tmp_path)
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "function_app.cpython-311.pyc").write_bytes(b"stale")  # removed

    built = subprocess.run(
        [str(ROOT / "tools" / "package-bytecode"), str(package)], capture_output=True, text=True, timeout=120
    )

    assert built.returncode == 0, built.stderr
    sources = [*sorted(package.glob("translators/**/*.py")), package / "function_app.py"]
    caches = sorted(package.glob("**/__pycache__/*.pyc"))
    assert (
        len(caches) == len(sources)
        and not (package / "__pycache__" / "function_app.cpython-311.pyc").exists()
    )
    for cache in caches:
        assert cache.name.endswith(".cpython-313.pyc"), cache
        flags = int.from_bytes(cache.read_bytes()[4:8], "little")
        assert flags == 0b11, f"{cache}: not checked-hash bytecode (flags {flags})"
    # Times change in a zip: the bytecode stays valid, since its source's hash is what is checked.
    for source in sources:
        os.utime(source, (1_000_000_000, 1_000_000_000))
    for path in package.rglob("*"):
        path.chmod(path.stat().st_mode & ~0o222)  # read-only, as Azure mounts it
    try:
        proc = subprocess.run(
            [sys.executable, "-v", "-c", "import function_app"],
            cwd=package,
            env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(package)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        for path in package.rglob("*"):
            path.chmod(path.stat().st_mode | 0o200)
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = re.findall(r"^# code object from '?(\S+?)'?$", proc.stderr, re.MULTILINE)
    ours = [path for path in loaded if path.startswith(str(package))]
    assert ours, "function_app and translators were imported"
    compiled = [path for path in ours if not path.endswith(".pyc")]
    assert compiled == [], f"compiled at start instead of read from the package: {compiled}"
