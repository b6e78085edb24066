"""``breaker prices --update``: fetched only when asked, what changed, where it is kept, how it is used.

No test here reaches the network: the "published" data is a local file served
over loopback HTTP (the real fetch path) or read as ``file://``. The real
address is tried only with ``BREAKER_NETWORK_TESTS=1``.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from breaker import Breaker, Usage
from breaker.cli.prices_update import compare, parse, use_prices_file
from breaker.pricing import PriceBook
from tests.cli.conftest import ROOT, assert_user_error, cli
from tests.conftest import genai_nano


def provider(*models: dict) -> dict:
    return {"id": "openai", "name": "OpenAI", "api_pattern": r"https://api\.openai\.com",
            "model_match": {"starts_with": "gpt-"}, "models": list(models)}


def model(name: str, prices) -> dict:
    return {"id": name, "match": {"equals": name}, "context_window": 128_000, "prices": prices}


MINI = {"input_mtok": 0.15, "output_mtok": 0.6}
OLD = [provider(
    model("gpt-4o", {"input_mtok": 2.5, "output_mtok": 10, "cache_read_mtok": 1.25}),
    model("gpt-4o-mini", MINI),
    model("gpt-3", {"input_mtok": 30, "output_mtok": 60}),
)]
NEW = [provider(
    model("gpt-4o", {"input_mtok": 2, "output_mtok": 8, "cache_read_mtok": 1.25}),
    model("gpt-4o-mini", [{"prices": MINI}, {"constraint": {"start_date": "2099-01-01"},
                                             "prices": {"input_mtok": 0.1, "output_mtok": 0.4}}]),
    model("gpt-9", {"input_mtok": {"base": 1, "tiers": [{"start": 200_000, "price": 2}]}, "output_mtok": 4}),
)]


@pytest.fixture
def published(tmp_path):
    """NEW served over loopback HTTP, as genai-prices' address would serve it."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "data.json").write_text(json.dumps(NEW))
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[method-assign]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/data.json"
    server.shutdown()
    server.server_close()


@pytest.fixture
def bundled():
    """Go back to the bundled data after a test that installs a snapshot."""
    from genai_prices import data_snapshot

    yield
    data_snapshot.set_custom_snapshot(None)


def test_update_says_what_changed_and_saves_the_data(tmp_path, published):
    old = tmp_path / "old.json"
    old.write_text(json.dumps(OLD))
    cache = tmp_path / "cache" / "genai-prices.json"
    first = cli("prices", "--update", "--url", old.as_uri(), "--data", str(cache))
    assert first.returncode == 0, first.stderr
    assert "Compared with the bundled genai-prices" in first.stdout and f"Saved to {cache}" in first.stdout

    result = cli("prices", "--update", "--url", published, "--data", str(cache), "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["compared_with"].startswith(f"the data saved at {cache}")
    assert report["added"] == ["openai/gpt-9"] and report["removed"] == ["openai/gpt-3"]
    assert report["changed"] == [{"model": "openai/gpt-4o",
                                  "rates": {"input_mtok": ["2.5", "2"], "output_mtok": ["10", "8"]}}]
    assert report["changed_later"] == ["openai/gpt-4o-mini"]  # same price today, a new one from 2099
    assert (report["providers"], report["models"]) == (1, 3)
    assert json.loads(cache.read_text()) == NEW  # kept as genai-prices publishes it

    again = cli("prices", "--update", "--url", published, "--data", str(cache))
    assert again.returncode == 0, again.stderr
    assert "nothing changed" in again.stdout
    assert f"breaker prices MODEL --data {cache}" in again.stdout and "use_prices_file(" in again.stdout


def test_text_report_names_models_and_rates(tmp_path):
    old, new = parse(json.dumps(OLD), source="old"), parse(json.dumps(NEW), source="new")
    changes = compare(old, new)
    assert changes["changed"][0]["rates"]["input_mtok"] == ["2.5", "2"]
    tiers = compare(new, parse(json.dumps([provider(model("gpt-9", {"input_mtok": 1, "output_mtok": 4}))]),
                               source="flat"))
    assert tiers["changed"] == [{"model": "openai/gpt-9", "rates": {
        "input_mtok": ["1 (2 past 200,000 input tokens)", "1"]}}]
    source = tmp_path / "new.json"
    source.write_text(json.dumps(NEW))
    cache = tmp_path / "c.json"
    cache.write_text(json.dumps(OLD))
    result = cli("prices", "--update", "--url", source.as_uri(), "--data", str(cache))
    assert result.returncode == 0, result.stderr
    assert "openai/gpt-4o: input_mtok 2.5 -> 2; output_mtok 10 -> 8" in result.stdout
    assert "1 model added: openai/gpt-9" in result.stdout and "1 model removed: openai/gpt-3" in result.stdout


def test_prices_reads_the_saved_data_only_when_told(tmp_path):
    cache = tmp_path / "genai-prices.json"
    cache.write_text(json.dumps(NEW))
    result = cli("prices", "gpt-9", "--data", str(cache), "--format", "json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    base, tier = info["tiers"]
    assert {r["key"]: r["usd"] for r in base["rates"]} == {"input_mtok": "1.00", "output_mtok": "4.00"}
    assert tier["above_input_tokens"] == 200_000
    assert str(cache) in result.stderr and "not the bundled data" in result.stderr
    assert_user_error(cli("prices", "gpt-9"), "no price is known for model 'gpt-9'")  # bundled data: unknown


def test_a_breaker_built_after_use_prices_file_prices_with_it(tmp_path, bundled):
    from genai_prices import data_snapshot

    cache = tmp_path / "genai-prices.json"
    cache.write_text(json.dumps(NEW))
    before = PriceBook().lookup("gpt-4o")
    assert before is not None and before.rates[0][1]["input_mtok"] == 2.5  # bundled: $2.50
    snapshot = use_prices_file(cache)
    assert data_snapshot.get_snapshot() is snapshot and snapshot.from_auto_update
    guard = Breaker(alerts=[])
    usage = Usage(1_000, 100)
    charged = guard.record("gpt-9", usage)
    assert charged is not None and round(charged * 1e9) == genai_nano(usage, "gpt-9", "openai") == 1_400_000
    assert PriceBook().lookup("gpt-4o").rates[0][1]["input_mtok"] == 2  # the updated $2.00
    data_snapshot.set_custom_snapshot(None)
    assert PriceBook().lookup("gpt-9") is None  # and back to the bundled data


def run_here(capsys, *args: str) -> subprocess.CompletedProcess:
    """``breaker ARGS`` in this process (the error paths install no prices data: nothing to undo)."""
    from breaker.cli import main

    status = main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, status, out, err)


def test_failures_are_user_errors_and_keep_the_old_file(tmp_path, capsys):
    cli = partial(run_here, capsys)
    cache = tmp_path / "genai-prices.json"
    cache.write_text(json.dumps(OLD))
    missing = (tmp_path / "missing.json").as_uri()
    assert_user_error(cli("prices", "--update", "--url", missing, "--data", str(cache)), "cannot fetch")
    for name, payload, needle in (
        ("dict.json", {"providers": []}, "not genai-prices' list of providers"),
        ("bad.json", [{"id": "x"}], "not data this genai-prices can read"),
        ("empty.json", [], "lists no models"),
    ):
        path = tmp_path / name
        path.write_text(json.dumps(payload))
        assert_user_error(cli("prices", "--update", "--url", path.as_uri(), "--data", str(cache)), needle)
    (tmp_path / "text.json").write_text("<html>")
    assert_user_error(cli("prices", "--update", "--url", (tmp_path / "text.json").as_uri(), "--data", str(cache)),
                      "is not JSON")
    assert json.loads(cache.read_text()) == OLD  # nothing half-written, nothing replaced
    assert_user_error(cli("prices", "--update", "--url", "ftp://example.com/x.json"), "https://")
    assert_user_error(cli("prices", "gpt-4o", "--update"), "--update fetches the data of every model")
    assert_user_error(cli("prices", "--url", missing), "add --update")
    assert_user_error(cli("prices"), "name a MODEL", "--update")
    assert_user_error(cli("prices", "gpt-4o", "--data", str(tmp_path / "none.json")), "breaker prices --update")


def test_pricing_never_reaches_the_network():
    """Import, pricing and ``breaker prices MODEL`` work with every outbound connection refused."""
    code = (
        "import socket, threading\n"
        "def refuse(self, address): raise OSError(f'network used: {address}')\n"
        "socket.socket.connect = refuse\n"
        "socket.socket.connect_ex = refuse\n"
        "import breaker\n"
        "guard = breaker.Breaker(alerts=[])\n"
        "print(guard.record('gpt-4o', breaker.Usage(1000, 100)))\n"
        "from breaker.cli import main\n"
        "main(['prices', 'gpt-4o', '--format', 'json'])\n"
        "print(sorted(t.name for t in threading.enumerate()))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert float(lines[0]) > 0 and '"input_mtok"' in done.stdout
    assert "genai_prices:update" not in lines[-1]  # genai-prices' background updater never started


def test_the_genai_prices_api_used_is_there():
    """What ``prices_update`` relies on: a genai-prices release that moves any of it fails here."""
    import genai_prices
    from genai_prices import data_snapshot, update_prices
    from genai_prices.types import ModelInfo, _providers_from_raw

    assert update_prices.DEFAULT_UPDATE_URL.startswith("https://")
    assert "_providers_from_raw" in inspect.getsource(genai_prices.UpdatePrices.fetch)  # the parser it uses
    assert callable(_providers_from_raw) and callable(ModelInfo.get_prices)
    fields = inspect.signature(data_snapshot.DataSnapshot).parameters
    assert {"providers", "from_auto_update", "timestamp"} <= set(fields)
    assert callable(data_snapshot.set_custom_snapshot) and callable(data_snapshot.get_snapshot)
    snapshot = parse(json.dumps(NEW), source="test")
    assert [m.id for m in snapshot.providers[0].models] == ["gpt-4o", "gpt-4o-mini", "gpt-9"]


@pytest.mark.skipif(os.environ.get("BREAKER_NETWORK_TESTS") != "1",
                    reason="fetches genai-prices' published data over the network: set BREAKER_NETWORK_TESTS=1")
def test_real_update(tmp_path):  # pragma: no cover - network
    cache = tmp_path / "genai-prices.json"
    result = cli("prices", "--update", "--data", str(cache), "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["models"] > 100 and Path(cache).stat().st_size > 10_000
