"""``Breaker.from_config``: one TOML file whose keys are the constructor's arguments.

Why a module of its own: a service is configured by its operators, in a file
they review and deploy, not in code. The file's keys are read off the
constructors' signatures (``Breaker``, ``Budget``, ``LoopPolicy``, ``Degrade``,
the alert sinks and the ledgers), so an argument added there is a key here,
and every value is checked by the same constructor a Python caller uses. What
this module adds is what a file needs:

- a mistake names its place in the file (``budgets[1].usd``), the value and
  the fix; an unknown key is answered with the key meant (``"ud"``: ``usd``);
- ``false`` turns off what Python turns off with ``None`` (TOML has no null);
- secrets never sit in the file: a webhook URL (Slack's token is in its path)
  and a ledger URL with a password are read from environment variables the
  file names (``url_env = "SLACK_WEBHOOK_URL"``, ``ledger_env = "BREAKER_REDIS_URL"``);
- ``ledger = "memory" | "sqlite:///abs/path.db" | "redis://host:6379/0"``, the
  one spelling of a ledger, which ``breaker report --ledger`` accepts too.

The engine is not imported here (``Breaker.from_config`` passes itself in), so
there is no import cycle between the engine and its configuration.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

from .checks import near_miss
from .errors import ConfigError
from .redact import scrub

__all__ = ["ENV", "REDIS_SCHEMES", "SQLITE_SCHEME", "ConfigFile", "build", "config_path", "load", "parse_ledger_url",
           "read_config"]

T = TypeVar("T")

ENV = "BREAKER_CONFIG"
"""The environment variable naming the file ``Breaker.from_config()`` reads when given no path."""

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
SQLITE_SCHEME = "sqlite://"

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CODE_ONLY = frozenset({"clock", "extra", "hook", "route"})
"""Arguments that are Python objects (functions, detectors): set in code, never in a file."""
_FILE_ONLY = ("ledger_env", "ledger_options")
_ALERT_TYPES = ("log", "webhook", "slack")


@dataclass(frozen=True)
class ConfigFile:
    """A file read and its objects built: the keyword arguments for ``Breaker(...)``.

    ``ledger`` and ``alerts`` say what was configured as it may be shown (credentials
    hidden); ``env`` lists the environment variables the file made us read.
    """

    path: Path
    arguments: dict[str, Any]
    ledger: str
    alerts: tuple[str, ...]
    env: tuple[str, ...]
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)  # the file's top-level values


# ---------------------------------------------------------------------------- ledgers


def parse_ledger_url(spec: str, base: str | os.PathLike[str] | None = None) -> tuple[str, str | None]:
    """``("memory", None)``, ``("sqlite", absolute path)`` or ``("redis", url)`` for a ledger URL.

    ``sqlite:///var/lib/app/breaker.db`` is an absolute path; ``sqlite://breaker.db`` is
    relative to ``base`` (a configuration file's directory; the working directory if
    ``None``): a service's working directory is rarely where its operator thinks.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(
            f"ledger = {_toml(spec)}: write \"memory\", \"sqlite:///abs/path.db\" or \"redis://host:6379/0\"")
    text = spec.strip()
    if text.lower() == "memory":
        return "memory", None
    if text.startswith(REDIS_SCHEMES):
        return "redis", text
    if text.startswith(SQLITE_SCHEME):
        rest = text[len(SQLITE_SCHEME):]
        if not rest.strip("/"):
            raise ConfigError(f"ledger = {_toml(spec)} names no file; write e.g. \"sqlite:///var/lib/app/breaker.db\"")
        rest = os.path.expanduser(rest)
        path = "/" + rest.lstrip("/") if rest.startswith("/") else os.path.join(os.fspath(base or os.getcwd()), rest)
        return "sqlite", os.path.abspath(path)
    near = near_miss(text, ("memory",))
    if near is None and ("/" in text or text.endswith((".db", ".sqlite", ".sqlite3"))) and "://" not in text:
        near = SQLITE_SCHEME + os.path.abspath(os.path.join(os.fspath(base or os.getcwd()), os.path.expanduser(text)))
    hint = f"did you mean \"{near}\"? " if near else ""
    raise ConfigError(
        f"ledger = {_toml(scrub(text))}: {hint}write \"memory\", \"sqlite:///abs/path.db\" (one host) "
        f"or \"redis://host:6379/0\" (many hosts)"
    )


def _ledger_class(kind: str) -> Any:
    from . import ledgers

    if kind == "memory":
        return ledgers.Memory
    if kind == "sqlite":
        return ledgers.SQLite
    return ledgers.Redis


# ---------------------------------------------------------------------------- the file


def config_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The file to read: ``path``, else the one ``$BREAKER_CONFIG`` names; it must exist."""
    how = ""
    if path is None:
        named = os.environ.get(ENV, "").strip()
        if not named:
            raise ConfigError(
                f"Breaker.from_config() was given no path and ${ENV} is not set: pass the file, "
                f"Breaker.from_config('/etc/breaker/breaker.toml'), or export {ENV}=/etc/breaker/breaker.toml"
            )
        path, how = named, f" (named by ${ENV})"
    p = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
    if p.is_dir():
        raise ConfigError(f"{p}{how} is a directory; name the TOML file inside it, e.g. {p / 'breaker.toml'}")
    if not p.is_file():
        raise ConfigError(f"no configuration file at {p}{how}; check the path (a TOML file, e.g. breaker.toml)")
    return p


def _load_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:  # its message names the line and column
        raise ConfigError(f"{path}: not valid TOML: {e}; fix that line (strings need quotes: per = \"user\")") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid TOML: the file is not UTF-8 text; save it as UTF-8") from None
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}") from None


def read_config(factory: Callable[..., Any], path: str | os.PathLike[str] | None = None,
                skip: frozenset[str] | set[str] = frozenset()) -> ConfigFile:
    """Read one file and build its objects for ``factory`` (``Breaker``); keys in ``skip``
    (given in code instead) are checked as keys but not built."""
    file = config_path(path)
    return _Reader(file, factory, skip).read(_load_toml(file))


def build(factory: Callable[..., T], path: str | os.PathLike[str] | None = None,
          overrides: Mapping[str, Any] | None = None) -> T:
    """``factory(**arguments)`` from the file, ``overrides`` (arguments given in code) winning."""
    return load(factory, path, overrides)[0]


def load(factory: Callable[..., T], path: str | os.PathLike[str] | None = None,
         overrides: Mapping[str, Any] | None = None) -> tuple[T, ConfigFile]:
    """``build``, and what the file said (for ``breaker check-config``'s summary).

    A ``ConfigError`` of the constructor itself (``unknown_price = "eror"``) is told with
    the file and the key it came from; what was opened for it (a ledger) is closed again.
    """
    overrides = dict(overrides or {})
    config = read_config(factory, path, skip=set(overrides))
    arguments = {**config.arguments, **overrides}
    try:
        return factory(**arguments), config
    except ConfigError as e:
        _discard(config.arguments)
        raise ConfigError(scrub(_blame(config.path, "", config.raw, e))) from None
    except BaseException:
        _discard(config.arguments)
        raise


def _discard(arguments: Mapping[str, Any]) -> None:
    """Close what a file opened when the Breaker it was for could not be built."""
    for sink in arguments.get("alerts") or ():
        close = getattr(sink, "close", None)
        if callable(close):
            close(0)
    ledger = arguments.get("ledger")
    close = getattr(ledger, "close", None)
    if callable(close):
        try:
            close()
        except Exception:
            pass


# ---------------------------------------------------------------------------- reading


class _Reader:
    """One file's reading: where we are in it, and the environment variables it named."""

    def __init__(self, path: Path, factory: Callable[..., Any], skip: frozenset[str] | set[str]) -> None:
        self.path = path
        self.factory = factory
        self.skip = skip
        self.env: list[str] = []
        self.secrets: dict[str, str] = {}  # value -> the variable it came from (never shown)

    def fail(self, key: str, message: str, value: Any = None, *, show: bool = True, table: str = "") -> ConfigError:
        where = f"{key} = {_toml(scrub(value) if isinstance(value, str) else value)}" if show else key
        return ConfigError(self.hide(f"{self.path}: {where}{table}: {message}"))

    def hide(self, message: str) -> str:
        for secret, name in sorted(self.secrets.items(), key=lambda kv: -len(kv[0])):
            message = message.replace(secret, f"${name}")
        return scrub(message)

    def read(self, doc: dict[str, Any]) -> ConfigFile:
        params = _parameters(self.factory)
        allowed = [n for n in params if n not in _CODE_ONLY and "Callable" not in str(params[n].annotation)]
        for key in doc:
            if key in _FILE_ONLY:
                continue
            if key in params and key not in allowed:
                raise self.fail(key, f"{key} is a Python object and cannot be written in a file; pass it in code: "
                                     f"Breaker.from_config(path, {key}=...)", show=False)
            if key not in params:
                raise self.fail(key, _unknown(key, [*allowed, *_FILE_ONLY], "the file's top level"), show=False)
        args: dict[str, Any] = {}
        shown_ledger = "memory (the default: one process)"
        shown_alerts: list[str] = ["log (the default)"]
        for key, value in doc.items():
            if key in self.skip or key in _FILE_ONLY:
                continue
            if key == "budgets":
                args[key] = self.budgets(value)
            elif key == "loops":
                args[key] = self.loops(value)
            elif key == "degrade":
                if value is not False:
                    args[key] = self.table("degrade", value, _class("degrade"))
            elif key == "alerts":
                args[key], shown_alerts = self.alerts(value)
            elif key == "prices":
                if not isinstance(value, dict):
                    raise self.fail(key, "write a [prices] table: \"my-model\" = { input = 3.0, output = 12.0 } "
                                         "(USD per million tokens) or \"deployment\" = \"gpt-4o\" (an alias)", value)
                args[key] = value
            elif key == "telemetry":
                if not isinstance(value, bool):
                    raise self.fail(key, "use true (OpenTelemetry spans and metrics) or false", value)
                args[key] = value
            elif key == "ledger":
                continue  # below, with ledger_env and ledger_options
            else:
                args[key] = None if value is False and _nullable(params[key]) else value
        self.check_degrade(args)
        if "ledger" not in self.skip:  # last: the one thing opened (a file, a client) is opened once all else is fine
            ledger, shown_ledger = self.ledger(doc, shown_ledger)
            if ledger is not None:
                args["ledger"] = ledger
        raw = {k: v for k, v in doc.items() if k not in _FILE_ONLY and k not in self.skip}
        return ConfigFile(self.path, args, shown_ledger, tuple(shown_alerts), tuple(self.env), raw)

    # ------------------------------------------------------------------ tables
    def table(self, where: str, value: Any, cls: Any, *, extra: Mapping[str, Any] | None = None,
              skip: tuple[str, ...] = (), title: str = "", label: str = "",
              fallback: tuple[str, Any] | None = None) -> Any:
        """``cls(**value)`` for one TOML table, each key checked against ``cls``'s parameters.

        ``title`` follows the key in messages (`` (the 2nd [[budgets]] table)``); ``label``
        names the kind of table (``a [[budgets]] table``); ``fallback`` is the key blamed for a
        message that names none of the table's (a webhook's URL: its ``url_env``).
        """
        label = label or f"[{where}]"
        if not isinstance(value, dict):
            raise self.fail(where, f"write it as a table ({label}) with one key = value per line", value, table=title)
        params = _parameters(cls)
        allowed = [n for n in params if n not in _CODE_ONLY and n not in skip
                   and "Callable" not in str(params[n].annotation)]
        kwargs: dict[str, Any] = dict(extra or {})
        for key, item in value.items():
            if key in params and key not in allowed and key not in skip:
                raise self.fail(f"{where}.{key}", f"{key} is a Python object and cannot be written in a file; "
                                f"build {cls.__name__}(...) in code and pass it to Breaker.from_config(path, ...)",
                                show=False)
            if key not in allowed:
                raise self.fail(f"{where}.{key}", _unknown(key, allowed, label), show=False, table=title)
            kwargs[key] = None if item is False and _nullable(params[key]) else item
        try:
            return cls(**kwargs)
        except ConfigError as e:
            raise ConfigError(self.hide(_blame(self.path, where, value, e, title, fallback))) from None

    def check_degrade(self, args: Mapping[str, Any]) -> None:
        """A budget that degrades calls needs a ``[degrade]`` table: said here in the file's terms
        (the constructor would say it in Python's)."""
        if "degrade" in args or "degrade" in self.skip:
            return
        for i, b in enumerate(args.get("budgets") or ()):
            if b.degrade_at is not None or b.on_exceed == "degrade":
                key = "degrade_at" if b.degrade_at is not None else "on_exceed"
                raise self.fail(f"budgets[{i}].{key}", "this budget degrades calls, so the file needs a [degrade] "
                                "table saying how, e.g. [degrade] with max_output_tokens = 1024, and "
                                "[degrade.model_map] with \"gpt-4o\" = \"gpt-4o-mini\"", getattr(b, key),
                                table=f" (the {_nth(i + 1)} [[budgets]] table)")

    def budgets(self, value: Any) -> list[Any]:
        if isinstance(value, dict):
            value = [value]  # a single [budgets] table: one budget
        if not isinstance(value, list):
            raise self.fail("budgets", "write one [[budgets]] table per budget, e.g. [[budgets]] then usd = 5.0 "
                                       "and per = \"session\" on the lines below it", value)
        budget = _class("budgets")
        return [self.table(f"budgets[{i}]", item, budget, title=f" (the {_nth(i + 1)} [[budgets]] table)",
                           label="a [[budgets]] table") for i, item in enumerate(value)]

    def loops(self, value: Any) -> Any:
        if value is False:
            return None  # loops = false: no loop detection
        if value is True:
            return _class("loops")()
        return self.table("loops", value, _class("loops"))

    # ------------------------------------------------------------------ secrets
    def from_env(self, key: str, name: Any, example: str) -> str:
        """The value of the environment variable ``name`` (given at ``key``), which must be set."""
        if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
            # not echoed: someone may have put the secret itself here
            raise self.fail(key, f"this takes the *name* of an environment variable (letters, digits and _), "
                                 f"e.g. {key.rpartition('.')[2]} = \"{example}\", and the secret goes in that "
                                 f"variable", show=False)
        value = os.environ.get(name, "").strip()
        if not value:
            raise self.fail(key, f"${name} is not set (or empty) in this process's environment; set it where the "
                                 f"service starts (export {name}=...), or name another variable", name)
        self.env.append(name)
        self.secrets[value] = name
        return value

    def alerts(self, value: Any) -> tuple[list[Any], list[str]]:
        if isinstance(value, dict):
            value = [value]
        if not isinstance(value, list):
            raise self.fail("alerts", "write one [[alerts]] table per sink, with type = \"log\", \"webhook\" or "
                                      "\"slack\"", value)
        sinks, shown = [], []
        for i, item in enumerate(value):
            sink, text = self.alert(f"alerts[{i}]", item, f" (the {_nth(i + 1)} [[alerts]] table)")
            sinks.append(sink)
            shown.append(text)
        return sinks, shown

    def alert(self, where: str, item: Any, title: str) -> tuple[Any, str]:
        if not isinstance(item, dict):
            raise self.fail(where, "write it as an [[alerts]] table with type = \"log\", \"webhook\" or \"slack\"",
                            item)
        kind = item.get("type")
        if kind not in _ALERT_TYPES:
            near = near_miss(kind, _ALERT_TYPES) if isinstance(kind, str) else None
            hint = f"did you mean \"{near}\"? " if near else ""
            raise self.fail(f"{where}.type", f"{hint}use type = \"log\", \"webhook\" or \"slack\"", kind,
                            table=title)
        rest = {k: v for k, v in item.items() if k != "type"}
        if kind == "log":
            from .alerts import Log

            sink = self.table(where, rest, Log, title=title, label='a type = "log" [[alerts]] table')
            return sink, f"log (logger {rest.get('logger', 'breaker')!r})"
        from .alerts.webhook import Webhook

        if "url" in rest:  # never echoed
            raise self.fail(f"{where}.url", "a webhook URL is a secret (Slack's carries its token in the path) "
                                            "and is never written in the file: put it in an environment variable "
                                            "and name that here, e.g. url_env = \"SLACK_WEBHOOK_URL\"",
                            show=False, table=title)
        if "headers" in rest:
            raise self.fail(f"{where}.headers", "header values are secrets (Authorization ...) and are never "
                                                "written in the file: name environment variables instead, e.g. "
                                                "headers_env = { Authorization = \"ALERTS_AUTH_HEADER\" }",
                            show=False, table=title)
        if "url_env" not in rest:
            raise self.fail(f"{where}.url_env", f"a {kind} alert needs url_env, the environment variable holding "
                                                f"its URL, e.g. url_env = \"SLACK_WEBHOOK_URL\"", show=False,
                            table=title)
        url_name = rest.pop("url_env")
        url = self.from_env(f"{where}.url_env", url_name, "SLACK_WEBHOOK_URL")
        headers: dict[str, str] = {}
        named = rest.pop("headers_env", {})
        if not isinstance(named, dict):
            raise self.fail(f"{where}.headers_env", "write a table of header name = variable name, e.g. "
                                                    "headers_env = { Authorization = \"ALERTS_AUTH_HEADER\" }",
                            named, table=title)
        for header, var in named.items():
            headers[header] = self.from_env(f"{where}.headers_env.{header}", var, "ALERTS_AUTH_HEADER")
        if kind == "slack":
            if "format" in rest:
                raise self.fail(f"{where}.format", "type = \"slack\" always sends Slack messages; for another "
                                                   "format use type = \"webhook\" with format = \"json\"",
                                rest["format"], table=title)
            rest["format"] = "slack"
        if "kinds" in rest and isinstance(rest["kinds"], list):
            rest["kinds"] = tuple(rest["kinds"])
        sink = self.table(where, rest, Webhook, extra={"url": url, "headers": headers or None},
                          skip=("url", "headers"), title=title, label=f'a type = "{kind}" [[alerts]] table',
                          fallback=("url_env", url_name))
        return sink, f"{kind}: {sink!r}, URL from ${url_name}" + "".join(
            f", {h} from ${v}" for h, v in named.items())

    def ledger(self, doc: Mapping[str, Any], default: str) -> tuple[Any, str]:
        spec, env, options = doc.get("ledger"), doc.get("ledger_env"), doc.get("ledger_options")
        if spec is not None and env is not None:
            raise self.fail("ledger_env", "give ledger (no secret in it) or ledger_env (a variable holding the URL), "
                                          "not both", env)
        if options is not None and not isinstance(options, dict):
            raise self.fail("ledger_options", "write a [ledger_options] table, e.g. prefix = \"breaker:\"", options)
        if spec is None and env is None:
            if not options:
                return None, default
            spec = "memory"
        key = "ledger"
        if env is not None:
            key = "ledger_env"
            spec = self.from_env("ledger_env", env, "BREAKER_REDIS_URL")
            shown = f"{scrub(spec)} (from ${env})"
        else:
            if not isinstance(spec, str):
                raise self.fail("ledger", "write \"memory\", \"sqlite:///abs/path.db\" or \"redis://host:6379/0\"",
                                spec)
            if scrub(spec) != spec:  # a password or a token in the URL
                raise self.fail("ledger", "this URL carries a credential, which is never written in the file: put "
                                          "the URL in an environment variable and name it instead, e.g. "
                                          "ledger_env = \"BREAKER_REDIS_URL\"", spec)
            shown = spec
        try:
            kind, target = parse_ledger_url(spec, self.path.parent)
        except ConfigError as e:  # its message starts "ledger = ..."
            where = "" if key == "ledger" else f"{key}: "
            raise ConfigError(self.hide(f"{self.path}: {where}{e}")) from None
        cls = _ledger_class(kind)
        if kind == "sqlite":
            shown = f"{SQLITE_SCHEME}{target}"
        elif kind == "memory":
            shown = "memory (one process)"
        first = () if target is None else (target,)
        try:
            ledger = self.table("ledger_options", dict(options or {}), _Bound(cls, first))
        except ImportError:  # the redis client is an extra
            raise self.fail(key, "a Redis ledger needs the redis client: pip install agent-cost-breaker[redis]",
                            spec if key == "ledger" else env) from None
        except ConfigError:
            raise
        except Exception as e:  # the store refused (a bad host, a file it cannot create)
            raise ConfigError(self.hide(f"{self.path}: {key}: cannot open the {kind} ledger {shown}: "
                                        f"{type(e).__name__}: {e}")) from None
        return ledger, shown


class _Bound:
    """A ledger class with its URL or path given: its other parameters are ``[ledger_options]``."""

    def __init__(self, cls: Any, first: tuple[Any, ...]) -> None:
        self.cls, self.first = cls, first
        self.__name__ = cls.__name__
        params = list(inspect.signature(cls).parameters.values())
        self.__signature__ = inspect.Signature(params[len(first):])

    def __call__(self, **kwargs: Any) -> Any:
        return self.cls(*self.first, **kwargs)


# ---------------------------------------------------------------------------- helpers


def _class(key: str) -> Any:
    """The class a table of the file builds (imported when the file has that table)."""
    if key == "budgets":
        from .budgets import Budget

        return Budget
    if key == "loops":
        from .loops import LoopPolicy

        return LoopPolicy
    from .degrade import Degrade

    return Degrade


def _parameters(factory: Any) -> dict[str, inspect.Parameter]:
    """The keyword-passable parameters of a constructor: the keys a table may hold."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {n: p for n, p in inspect.signature(factory).parameters.items() if p.kind in kinds}


def _nullable(param: inspect.Parameter) -> bool:
    """Whether ``false`` in the file means ``None`` here (an optional setting, not a flag)."""
    annotation = str(param.annotation)
    return "None" in annotation and "bool" not in annotation


def _unknown(key: str, allowed: list[str], where: str) -> str:
    near = near_miss(key, allowed)
    hint = f"did you mean {near}? " if near else ""
    return f"unknown key; {hint}{where[:1].upper()}{where[1:]} takes {', '.join(allowed)}"



def _nth(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _toml(value: Any) -> str:
    """A value as the file writes it (``"user"``, ``true``, ``[0.5, 0.8]``), cut short."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _blame(path: Path, where: str, table: Mapping[str, Any], error: ConfigError, title: str = "",
           fallback: tuple[str, Any] | None = None) -> str:
    """A constructor's message, told with the key in the file it is about.

    The constructors name the argument (``Budget(usd=-1)``, ``unknown_price='eror'``):
    the first key of the table that the message names is the one blamed.
    """
    message = str(error)
    hits = []
    for key in table:
        m = re.search(rf"(?<![A-Za-z0-9_]){re.escape(key)}(?:\)|\s*[=(\[])", message, re.IGNORECASE)
        if m:
            hits.append((m.start(), key))
    prefix = f"{where}." if where else ""
    if hits:
        key = min(hits)[1]
        value = table[key]
    elif fallback is not None:
        key, value = fallback
    else:
        return f"{path}: {where or 'the file'}{title}: {message}"
    return f"{path}: {prefix}{key} = {_toml(value)}{title}: {message}"
