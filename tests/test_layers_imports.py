"""The one-way import rules between apps and layers (docs/architecture.md, "Apps and imports").

Read from the source with ``ast``: every runtime import of every module of every app, at any
depth (imports inside functions count). Imports under ``if TYPE_CHECKING:`` are left out: they
exist for the type checker only and create no dependency when the code runs.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest
from django.apps import apps

ROOT = Path(__file__).resolve().parent.parent
APPS = ("accounts", "scraping", "tracking", "notifications", "fakestore", "pricetracker")
# The interface layer: what turns requests into service calls and results into responses.
INTERFACE_MODULES = ("views", "serializers", "admin", "urls")
API_LAYER = ("pricetracker.health", "pricetracker.metrics", "pricetracker.urls")
# Where workflows, rules and queries live: they never reach up into the interface layer.
CORE_MODULES = ("services", "selectors", "policy", "models", "hooks")


@cache
def modules() -> dict[str, set[str]]:
    """``{module: {imported module, ...}}`` for every module of every app (migrations aside)."""
    found: dict[str, set[str]] = {}
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if "migrations" in relative.parts:
                continue
            name = ".".join(relative.with_suffix("").parts).removesuffix(".__init__")
            found[name] = imports_of(path, package=name if path.name == "__init__.py" else name.rpartition(".")[0])
    return found


def imports_of(path: Path, *, package: str) -> set[str]:
    """Every module ``path`` imports at run time; ``from a import b`` counts as ``a`` and ``a.b``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            for child in node.body:
                type_only.update(id(inner) for inner in ast.walk(child))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            imported.add(base)
            imported.update(f"{base}.{alias.name}" for alias in node.names)
    return imported


def offenders(module_prefixes: tuple[str, ...], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    """Modules under ``module_prefixes`` that import something under ``forbidden``."""
    bad: dict[str, list[str]] = {}
    for module, imported in modules().items():
        if not module.startswith(module_prefixes):
            continue
        hits = sorted(name for name in imported if _is_under(name, forbidden))
        if hits:
            bad[module] = hits
    return bad


def _is_under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(f"{prefix}.") for prefix in prefixes)


def test_the_source_is_read():
    assert "tracking.services.scheduling" in modules()
    assert "tracking.models" in modules()["tracking.services.scheduling"]


@pytest.mark.parametrize(
    ("app", "others"),
    [
        ("scraping", ("accounts", "tracking", "notifications", "fakestore")),
        ("accounts", ("scraping", "tracking", "notifications", "fakestore")),
        ("tracking", ("notifications", "fakestore")),
        ("notifications", ("fakestore",)),
    ],
)
def test_imports_between_apps_flow_one_way(app, others):
    assert offenders((f"{app}.",), others) == {}


def test_no_app_imports_the_api_layer():
    apps_only = tuple(f"{app}." for app in APPS if app != "pricetracker")
    assert offenders(apps_only, API_LAYER) == {}


def test_services_selectors_and_rules_never_import_the_interface_layer():
    interface = tuple(f"{app}.{module}" for app in APPS for module in INTERFACE_MODULES) + API_LAYER
    core = tuple(
        module
        for module in modules()
        if any(part in CORE_MODULES for part in module.split(".")[1:]) and not module.startswith("pricetracker.")
    )
    assert core, "no service, selector or policy module found"
    assert offenders(core, interface) == {}


@pytest.mark.django_db
def test_health_and_metrics_query_through_selectors_only():
    """Queries over tracking and notifications data live in those apps' selectors; health and
    metrics compose them and format (choices such as ``RunStatus`` are fine: they are labels)."""
    models = {
        f"{model._meta.app_label}.models.{model.__name__}"
        for label in ("tracking", "notifications")
        for model in apps.get_app_config(label).get_models()
    }
    for module in ("pricetracker.health", "pricetracker.metrics"):
        assert modules()[module] & models == set(), module
