"""``Breaker.from_config``: a TOML file builds the same Breaker the constructor does (issue 20).

Budgets from a file are enforced on real calls: the real OpenAI SDK against the loopback
``FakeLLM``, the ledger a real SQLite file (and a real redis-server), counting what reached
the fake. A bad file names the key, its value and the fix; a secret written inline is
refused without being repeated; ``$BREAKER_CONFIG`` names the file when no path is given.
"""

from __future__ import annotations

import logging
import textwrap

import pytest

import breaker
from breaker import Breaker, Budget, ConfigError, Usage
from breaker.alerts.webhook import Webhook
from breaker.testing import FakeLLM, Reply
from tests.alerts.receiver import Receiver
from tests.conftest import Clock, genai_nano

openai = pytest.importorskip("openai")

MODEL = "gpt-4o-mini"
SERVED = Usage(400, 30)  # what the fake reports for every call here
PRICE = genai_nano(SERVED, MODEL, "openai")
REPLY = Reply(text=" ".join(["word"] * SERVED.output_tokens), input_tokens=SERVED.input_tokens,
              output_tokens=SERVED.output_tokens)
PROMPT = "x" * 2000  # its strict input bound is above the 400 tokens the fake reports


@pytest.fixture(autouse=True)
def _journals_in_tmp(tmp_path, monkeypatch):
    """A Breaker on SQLite or Redis keeps its outage journal under $XDG_STATE_HOME: not ~."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("BREAKER_CONFIG", raising=False)


@pytest.fixture
def fake():
    with FakeLLM(default=REPLY) as server:
        yield server


def write(tmp_path, text: str, name: str = "breaker.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def ask(client) -> None:
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": PROMPT}], max_tokens=200)


def client_for(guard: Breaker, fake: FakeLLM):
    return guard.wrap(openai.OpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0))


# ------------------------------------------------------------------ a file that works


def test_a_file_with_budgets_and_a_sqlite_ledger_enforces_them(tmp_path, fake):
    db = tmp_path / "spend.db"
    path = write(tmp_path, f"""
        ledger = "sqlite://{db}"
        telemetry = false
        alerts = []

        [[budgets]]
        calls = 3
        per = "session"

        [[budgets]]
        usd = {PRICE * 10 / 1e9!r}
        per = "global"
        window = "1d"

        [loops]
        max_identical = false   # the same prompt each time: not a loop here
    """)
    guard = Breaker.from_config(path)
    assert guard.loops is not None and guard.loops.max_identical is None
    assert guard.budgets == (Budget(calls=3, per="session"), Budget(usd=PRICE * 10 / 1e9, per="global", window="1d"))
    client = client_for(guard, fake)

    with pytest.raises(breaker.SessionKilled) as killed:
        with guard.session("s1"):
            for _ in range(10):
                ask(client)
    assert fake.count == 3  # the 4th call of the session was refused before it was sent
    assert killed.value.scope == "session" and killed.value.reason == "budget"

    # A second process configured by the same file shares the SQLite ledger: its global budget
    # already holds the first one's spend, exactly what genai-prices charges for three calls.
    other = Breaker.from_config(path)
    assert other.spent("global", window="1d").usd == pytest.approx(3 * PRICE / 1e9, abs=1e-12)
    assert other.ledger.inner.path == str(db)
    client2 = client_for(other, fake)
    sent = fake.count
    with pytest.raises(breaker.SessionKilled) as stopped:
        for n in range(10):
            with guard.session(f"s2-{n}") if n % 2 else other.session(f"s2-{n}"):
                ask(client if n % 2 else client2)
    assert stopped.value.scope == "global" and fake.count > sent
    # ten calls' worth of dollars, of which each admission reserves its worst case (the input the provider
    # reported for this same prompt, and max_tokens of output, lowered to what is left for the last):
    # at most ten are sent (without the budget all 13 would be), and what was spent is exactly what
    # reached the fake
    assert fake.count <= 10
    assert other.spent("global", window="1d").usd * 1e9 == pytest.approx(fake.count * PRICE, abs=1)
    assert other.spent("global", window="1d").usd * 1e9 <= PRICE * 10
    guard.ledger.close()
    other.ledger.close()


def test_breaker_config_names_the_file_when_no_path_is_given(tmp_path, monkeypatch, fake):
    path = write(tmp_path, """
        alerts = []
        loops = false
        unknown_price = "warn"
        min_output_tokens = 8
        session_ttl = "10m"

        [[budgets]]
        calls = 1
        per = "user"
    """)
    with pytest.raises(ConfigError, match=r"\$BREAKER_CONFIG is not set"):
        Breaker.from_config()
    monkeypatch.setenv("BREAKER_CONFIG", str(path))
    guard = Breaker.from_config()
    assert (guard.loops, guard.unknown_price, guard.min_output_tokens, guard.session_ttl) == (None, "warn", 8, 600)
    client = client_for(guard, fake)
    with guard.session("a", user="acme"):
        ask(client)
    with pytest.raises(breaker.SessionKilled):
        with guard.session("b", user="acme"):
            ask(client)  # the user's one call is spent
    assert fake.count == 1
    monkeypatch.setenv("BREAKER_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match=r"missing\.toml \(named by \$BREAKER_CONFIG\)"):
        Breaker.from_config()


def test_degrade_prices_and_overrides_from_code(tmp_path):
    clock = Clock()
    path = write(tmp_path, """
        alerts = []
        [[budgets]]
        usd = 1.0
        degrade_at = 0.5
        warn_at = false

        [degrade]
        max_output_tokens = 256
        [degrade.model_map]
        "prod-gpt4o" = "gpt-4o-mini"

        [prices]
        "prod-gpt4o" = "gpt-4o"
        "house-model" = { input = 1.0, output = 2.0 }
    """)
    seen: list[object] = []
    guard = Breaker.from_config(path, clock=clock, alerts=[seen.append], loops=None)
    assert guard.clock is clock and guard.loops is None and guard.alerts == [seen.append]
    assert guard.budgets[0].warn_at == () and guard.budgets[0].degrade_at == 0.5
    assert guard.degrade.model_map == {"prod-gpt4o": "gpt-4o-mini"} and guard.degrade.max_output_tokens == 256
    # the alias is priced as gpt-4o, the house model at its own rates: exact, in nano-USD
    with guard.session("p"):
        assert guard.record("prod-gpt4o", SERVED) * 1e9 == pytest.approx(genai_nano(SERVED, "gpt-4o", "openai"))
        assert guard.record("house-model", Usage(1_000_000, 1_000_000)) == pytest.approx(3.0)


def test_log_and_webhook_alerts_take_their_url_from_the_environment(tmp_path, monkeypatch, fake, caplog):
    receiver = Receiver()
    monkeypatch.setenv("ALERTS_URL", receiver.url)
    monkeypatch.setenv("ALERTS_AUTH", "Bearer sk-S3CRET")
    path = write(tmp_path, """
        [[budgets]]
        calls = 1

        [[alerts]]
        type = "log"
        logger = "breaker.test"
        session_end = false

        [[alerts]]
        type = "webhook"
        url_env = "ALERTS_URL"
        headers_env = { Authorization = "ALERTS_AUTH" }
        kinds = ["tripped"]
        backoff = 0.01
    """)
    guard = Breaker.from_config(path, loops=None)
    log, hook = guard.alerts
    assert isinstance(hook, Webhook) and hook.kinds == {"tripped"}
    try:
        with caplog.at_level(logging.INFO, logger="breaker.test"), pytest.raises(breaker.SessionKilled):
            with guard.session("t"):
                for _ in range(3):
                    ask(client_for(guard, fake))
        assert hook.flush(10)
    finally:
        hook.close(2)
        receiver.close()
    assert fake.count == 1
    assert [r["json"]["kind"] for r in receiver.requests] == ["tripped"]
    assert receiver.requests[0]["headers"]["Authorization"] == "Bearer sk-S3CRET"
    assert "tripped" in caplog.text and "session_end" not in caplog.text
    assert "sk-S3CRET" not in caplog.text and "SECRET-PATH" not in caplog.text


def test_a_relative_sqlite_path_is_next_to_the_file_and_redis_comes_from_the_environment(
        tmp_path, monkeypatch, redis_server):
    pytest.importorskip("redis")
    path = write(tmp_path, 'ledger = "sqlite://data/spend.db"\nalerts = []\n')
    (tmp_path / "data").mkdir()
    monkeypatch.chdir("/")
    guard = Breaker.from_config(path)
    assert guard.ledger.inner.path == str(tmp_path / "data" / "spend.db")
    guard.ledger.close()

    monkeypatch.setenv("BREAKER_REDIS_URL", redis_server.url)
    prefix = f"cfg-{tmp_path.name}:"
    path = write(tmp_path, f"""
        ledger_env = "BREAKER_REDIS_URL"
        alerts = []
        [ledger_options]
        prefix = "{prefix}"
        [[budgets]]
        calls = 2
        per = "global"
    """, "redis.toml")
    one, two = Breaker.from_config(path), Breaker.from_config(path)
    assert one.ledger.inner.prefix == prefix
    with one.session("a"):
        one.record(MODEL, SERVED)
    with two.session("b"):
        two.record(MODEL, SERVED)
    assert one.spent("global").calls == two.spent("global").calls == 2  # one budget, two processes' worth
    one.ledger.close()
    two.ledger.close()


# ------------------------------------------------------------------ a file that does not


@pytest.mark.parametrize("text, needles", [
    ("[[budgets]]\nusd = 5\n[[budgets]]\nusd = -1\n",
     ["budgets[1].usd = -1", "the 2nd [[budgets]] table", "must be more than 0", "usd=2.50"]),
    ("[[budgets]]\nud = 5\n", ["budgets[0].ud", "unknown key; did you mean usd?"]),
    ("[[budgets]]\nusd = 5\nper = \"sesion\"\n", ["budgets[0].per = \"sesion\"", "did you mean per='session'"]),
    ("[[budgets]]\nusd = 5\nwindow = \"1 fortnight\"\n", ["budgets[0].window = \"1 fortnight\"", "'1h'"]),
    ("[[budgets]]\nusd = 5\ndegrade_at = 0.8\n", ["budgets[0].degrade_at = 0.8", "needs a [degrade] table"]),
    ("budgets = 5\n", ["budgets = 5", "[[budgets]]"]),
    ("unknown_price = \"eror\"\n", ["unknown_price = \"eror\"", "did you mean 'error'"]),
    ("on_ledger_error = \"shut\"\n", ["on_ledger_error = \"shut\"", "'closed'"]),
    ("reservation_wait = \"soon\"\n", ["reservation_wait = \"soon\"", "number of seconds"]),
    ("telemetry = \"yes\"\n", ["telemetry = \"yes\"", "true"]),
    ("telemetri = true\n", ["telemetri: unknown key; did you mean telemetry?"]),
    ("clock = 5\n", ["clock", "cannot be written in a file", "Breaker.from_config(path, clock=...)"]),
    ("[loops]\nmax_identical = 0\n", ["loops.max_identical = 0", "at least 1"]),
    ("[loops]\nmax_identicl = 2\n", ["loops.max_identicl", "did you mean max_identical?"]),
    ("[degrade.model_map]\n\"gpt-4o\" = \"gpt-4o-mnii\"\n", ["degrade = ", "Did you mean 'gpt-4o-mini'"]),
    ("[degrade]\nhook = \"x\"\n", ["degrade.hook", "cannot be written in a file"]),
    ("[prices]\nx = { input = 1 }\n", ["prices = ", "prices['x'] needs ['output']"]),
    ("ledger = \"memroy\"\n", ["ledger = \"memroy\"", "did you mean \"memory\"?"]),
    ("ledger = \"/var/lib/app/spend.db\"\n", ["did you mean \"sqlite:///var/lib/app/spend.db\"?"]),
    ("ledger = \"memory\"\n[ledger_options]\nidle_tl = \"1h\"\n", ["ledger_options.idle_tl", "did you mean idle_ttl?"]),
    ("[[alerts]]\ntype = \"slak\"\n", ["alerts[0].type = \"slak\"", "did you mean \"slack\"?"]),
    ("[[alerts]]\ntype = \"log\"\nlevel = 3\n", ["alerts[0].level", "unknown key", "logger, session_end"]),
    ("[[alerts]]\ntype = \"slack\"\n", ["alerts[0].url_env", "needs url_env"]),
    ("[[alerts]]\ntype = \"slack\"\nurl_env = \"NOT_SET_ANYWHERE\"\n", ["$NOT_SET_ANYWHERE is not set"]),
    ("[[budgets]]\nusd = 5\nper = \"user\"\nkey = \n", ["not valid TOML", "line 4"]),
])
def test_a_bad_value_names_its_key_its_value_and_the_fix(tmp_path, text, needles):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        Breaker.from_config(path)
    message = str(e.value)
    assert message.startswith(f"{path}: "), message
    for needle in needles:
        assert needle in message, (needle, message)


SLACK = "https://hooks.slack.com/services/T000/B000/XyZsEcReTtOkEn"


@pytest.mark.parametrize("text, secret, needles", [
    (f'[[alerts]]\ntype = "slack"\nurl = "{SLACK}"\n', "XyZsEcReTtOkEn",
     ["alerts[0].url", "never written in the file", 'url_env = "SLACK_WEBHOOK_URL"']),
    (f'[[alerts]]\ntype = "webhook"\nurl_env = "{SLACK}"\n', "XyZsEcReTtOkEn",
     ["alerts[0].url_env", "*name* of an environment variable"]),
    ('[[alerts]]\ntype = "webhook"\nurl_env = "U"\nheaders = { Authorization = "Bearer sk-XyZsEcReTtOkEn" }\n',
     "XyZsEcReTtOkEn", ["alerts[0].headers", "headers_env = { Authorization"]),
    ('ledger = "redis://:XyZsEcReTtOkEn@cache:6379/0"\n', "XyZsEcReTtOkEn",
     ['ledger = "redis://:***@cache:6379/0"', 'ledger_env = "BREAKER_REDIS_URL"']),
    ('ledger = "rediss://app:XyZsEcReTtOkEn@cache:6380/0"\n', "XyZsEcReTtOkEn",
     ["rediss://app:***@cache", "ledger_env"]),
    ('ledger = "redis://cache:6379/0?password=XyZsEcReTtOkEn"\n', "XyZsEcReTtOkEn", ["ledger_env"]),
])
def test_an_inline_secret_is_refused_without_repeating_it(tmp_path, monkeypatch, text, secret, needles):
    monkeypatch.setenv("U", "https://alerts.example.com/hook")
    with pytest.raises(ConfigError) as e:
        Breaker.from_config(write(tmp_path, text))
    message = str(e.value)
    assert secret not in message, message
    for needle in needles:
        assert needle in message, (needle, message)


def test_a_secret_from_the_environment_never_shows_in_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HOOK", "http://alerts.example.com/services/XyZsEcReTtOkEn")  # not https: refused
    with pytest.raises(ConfigError) as e:
        Breaker.from_config(write(tmp_path, '[[alerts]]\ntype = "slack"\nurl_env = "HOOK"\n'))
    message = str(e.value)
    assert 'alerts[0].url_env = "HOOK"' in message and "https is required" in message
    assert "XyZsEcReTtOkEn" not in message
    monkeypatch.setenv("LEDGER", "redis://:XyZsEcReTtOkEn@cache:6379/0")
    with pytest.raises(ConfigError) as e:
        Breaker.from_config(write(tmp_path, 'ledger_env = "LEDGER"\n[ledger_options]\ntag = "{x}"\n'))
    assert "XyZsEcReTtOkEn" not in str(e.value) and "ledger_env" in str(e.value)


def test_a_path_that_is_not_a_file_says_so(tmp_path):
    with pytest.raises(ConfigError, match="no configuration file at"):
        Breaker.from_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="is a directory"):
        Breaker.from_config(tmp_path)


def test_the_readme_example_builds(tmp_path, monkeypatch):
    """The file shown under "Running in production" is one that works."""
    from pathlib import Path

    from breaker.configfile import load

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Running in production"):]
    start = section.index("```toml\n") + len("```toml\n")
    example = section[start:section.index("```\n", start)]
    monkeypatch.setenv("BREAKER_REDIS_URL", "redis://:pw@127.0.0.1:1/0")  # not reached: nothing is called
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/x")
    path = tmp_path / "breaker.toml"
    path.write_text(example)
    guard, config = load(Breaker, path)
    try:
        assert [b.describe() for b in guard.budgets] == ["$2.00 per session", "$500.00 per feature per 30d"]
        assert guard.loops.max_calls == 60 and guard.loops.max_identical is None
        assert config.ledger == "redis://:***@127.0.0.1:1/0 (from $BREAKER_REDIS_URL)"
        assert set(config.env) == {"BREAKER_REDIS_URL", "SLACK_WEBHOOK_URL"}
    finally:
        guard.ledger.close()
