"""Each plugin imports its framework lazily and says what to install when it is missing."""

from __future__ import annotations

import importlib
import sys

import pytest

CASES = [
    ("breaker_langchain", "BreakerMiddleware", "_middleware", "langchain.agents.middleware", "langchain"),
    ("breaker_langchain", "BreakerCallbackHandler", "_callbacks", "langchain_core.callbacks", "langchain"),
    ("breaker_openai_agents", "BreakerHooks", "_hooks", "agents", "openai-agents"),
    ("breaker_pydantic_ai", "BreakerCapability", "_capability", "pydantic_ai.capabilities", "pydantic-ai"),
    ("breaker_litellm", "BreakerLogger", "_logger", "litellm", "litellm"),
]


@pytest.mark.parametrize(("package", "name", "module", "framework", "extra"), CASES)
def test_a_missing_framework_says_how_to_install_it(monkeypatch, package, name, module, framework, extra):
    plugin = importlib.import_module(package)
    monkeypatch.setitem(sys.modules, framework, None)  # what an uninstalled package looks like to import
    monkeypatch.delitem(sys.modules, f"{package}.{module}", raising=False)
    monkeypatch.delitem(plugin.__dict__, name, raising=False)
    monkeypatch.delattr(plugin, module, raising=False)
    with pytest.raises(ImportError, match=rf"pip install 'agent-cost-breaker\[{extra}\]'"):
        getattr(plugin, name)


def test_importing_a_plugin_package_does_not_import_its_framework():
    code = (
        "import sys, breaker_langchain, breaker_openai_agents, breaker_pydantic_ai, breaker_litellm; "
        "loaded = [m for m in ('langchain', 'langchain_core', 'agents', 'pydantic_ai', 'litellm') if m in sys.modules]; "
        "print(loaded); assert not loaded, loaded"
    )
    import subprocess

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
