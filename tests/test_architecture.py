"""The layout holds: imports run one way, services never reach into api/, modules stay small."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("portal", "tenants", "billing", "transcription", "streaming", "dashboard")
# Which apps each app may import (the chain streaming -> transcription -> billing -> tenants -> portal; dashboard
# on top).
ALLOWED = {
    "tenants": {"tenants", "portal"},
    "billing": {"billing", "tenants", "portal"},
    "transcription": {"transcription", "billing", "tenants", "portal"},
    "streaming": {"streaming", "transcription", "billing", "tenants", "portal"},
    "dashboard": set(APPS),
}
# portal is the project package: its urls/asgi/metrics wire every app together; its library modules may not.
PORTAL_WIRING = {"urls.py", "api_urls.py", "asgi.py", "wsgi.py", "views.py", "middleware.py", "settings"}
MAX_MODULE_LINES = 400


def _modules(app: str):
    for path in sorted((ROOT / app).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        yield path


def _imported_apps(path: Path) -> set[tuple[str, int]]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            top = name.split(".")[0]
            if top in APPS:
                found.add((name, node.lineno))
    return found


@pytest.mark.parametrize("app", ["tenants", "billing", "transcription", "streaming"])
def test_imports_run_one_way(app):
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in _modules(app)
        for name, line in _imported_apps(path)
        if name.split(".")[0] not in ALLOWED[app]
    ]
    assert wrong == []


def test_portal_library_modules_import_no_app():
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in _modules("portal")
        if not (set(path.relative_to(ROOT / "portal").parts) & PORTAL_WIRING)
        for name, line in _imported_apps(path)
        if name.split(".")[0] != "portal"
    ]
    assert wrong == []


def test_services_and_selectors_never_import_the_api_layer():
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for app in APPS
        for path in _modules(app)
        if path.stem in ("services", "selectors") or "services" in path.parts
        for name, line in _imported_apps(path)
        if ".api" in name
    ]
    assert wrong == []


def test_no_application_module_is_over_400_lines():
    long = [
        f"{path.relative_to(ROOT)}: {n} lines"
        for app in APPS
        for path in _modules(app)
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert long == []


ML_MODULES = ("funasr", "torch", "torchaudio")


def test_only_the_engines_import_funasr_or_torch():
    """The web tier (and the stream worker's protocol code) never imports torch: only transcription/engines/*
    and the developer tool transcription/testmodels.py (+ testmodels_vad.py) do."""
    allowed = {ROOT / "transcription" / "testmodels.py", ROOT / "transcription" / "testmodels_vad.py"}
    wrong = []
    for app in APPS:
        for path in _modules(app):
            if "engines" in path.relative_to(ROOT).parts or path in allowed:
                continue
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                wrong += [
                    f"{path.relative_to(ROOT)}:{node.lineno} imports {n}"
                    for n in names
                    if n.split(".")[0] in ML_MODULES
                ]
    assert wrong == []
