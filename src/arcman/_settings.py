"""Layered settings for the CLI: flag > environment > config file > default.

The file is an ``arcman.toml`` or the ``[tool.arcman]`` table of a ``pyproject.toml``, found
from a start directory upwards (the nearest wins, as ruff and black do). Every resolved value
remembers where it came from, so ``arcman config`` can explain it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from ._config import ArchiveConfig, ExtractionLimits, available_cpus
from ._errors import ConfigError, UnsupportedFormatError
from ._formats import CompressionFormat

LIMIT_FIELDS = tuple(f.name for f in dataclasses.fields(ExtractionLimits))


class SettingsError(ConfigError):
    """A configuration file or environment variable holds an unknown key or a bad value."""


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _format(value: str) -> str:
    return CompressionFormat(value).value


def _limit(name: str) -> Callable[[Any], int | float | None]:
    """A limit is what ExtractionLimits accepts (a positive finite number, an int but for the
    ratio), or 0 / "none" for no limit, in a file, the environment and on the command line."""

    def convert(value: Any) -> int | float | None:
        if isinstance(value, str):
            if value.strip().lower() in ("none", ""):
                return None
            value = float(value) if "." in value else int(value)
        if value == 0 and not isinstance(value, bool):
            return None
        checked: dict[str, Any] = {name: value}
        ExtractionLimits(**checked)  # raises ConfigError, a ValueError, naming the field
        limit: int | float = value
        return limit

    return convert


class _Key(NamedTuple):
    check: Callable[[Any], Any]  # converts a TOML value; raises ValueError when it is wrong
    parse: Callable[[str], Any]  # converts an environment string
    env: str


def _typed(kind: type) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if isinstance(value, bool) is not (kind is bool) or not isinstance(value, kind):
            raise ValueError(f"expected {kind.__name__}, got {value!r}")
        return value

    return check


def _threads(value: int) -> int:
    if value < 1:
        raise ValueError(f"must be at least 1, not {value}")
    return value


def _str_list(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a list of strings, got {value!r}")
    return list(value)


KEYS: dict[str, _Key] = {
    "level": _Key(_typed(int), int, "ARCMAN_LEVEL"),
    "threads": _Key(lambda v: _threads(_typed(int)(v)), lambda s: _threads(int(s)),
                    "ARCMAN_THREADS"),
    "format": _Key(lambda v: _format(_typed(str)(v)), _format, "ARCMAN_FORMAT"),
    "reproducible": _Key(_typed(bool), _bool, "ARCMAN_REPRODUCIBLE"),
    # Additive across layers, like repeated --exclude; the environment separates with ":".
    "excludes": _Key(_str_list, lambda s: [p for p in s.split(":") if p], "ARCMAN_EXCLUDES"),
    **{
        f"limits.{name}": _Key(_limit(name), _limit(name), f"ARCMAN_LIMITS_{name.upper()}")
        for name in LIMIT_FIELDS
    },
}


@dataclass
class Setting:
    value: Any
    source: str
    # For "excludes": where each pattern came from, so --dry-run can say why a path is out.
    origins: list[str] = dataclasses.field(default_factory=list)


def find_config_file(start: str) -> tuple[str, dict[str, Any]] | None:
    """The nearest ``arcman.toml``, or ``pyproject.toml`` with ``[tool.arcman]``, and its table."""
    directory = os.path.abspath(start)
    while True:
        for name in ("arcman.toml", "pyproject.toml"):
            path = os.path.join(directory, name)
            if not os.path.isfile(path):
                continue
            import tomllib  # ~3 ms, and most runs find no configuration file

            try:
                with open(path, "rb") as f:
                    data = tomllib.load(f)
            except UnicodeDecodeError as exc:
                raise SettingsError(
                    f"cannot read {path}: not UTF-8 (byte {exc.object[exc.start]:#04x} at "
                    f"offset {exc.start})"
                ) from None
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise SettingsError(f"cannot read {path}: {exc}") from exc
            if name == "arcman.toml":
                return path, data
            table = data.get("tool", {}).get("arcman")
            if table is not None:
                if not isinstance(table, dict):
                    raise SettingsError(f"[tool.arcman] in {path} is not a table")
                return path, table
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def _flatten(table: Mapping[str, Any], path: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if key == "limits":
            if not isinstance(value, dict):
                raise SettingsError(f"'limits' in {path} must be a table")
            flat.update({f"limits.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    for key in flat:
        if key not in KEYS:
            raise SettingsError(f"unknown key {key!r} in {path}")
    return flat


def _where(source: str) -> str:
    return "on the command line" if source == "flag" else f"in {source}"


def _convert(key: str, raw: Any, convert: Callable[[Any], Any], source: str) -> Any:
    try:
        return convert(raw)
    except ValueError as exc:  # ConfigError included
        raise SettingsError(f"bad value for {key!r} {_where(source)}: {exc}") from None


def check_level(settings: Mapping[str, Setting], fmt: CompressionFormat | None) -> None:
    """Refuse a level outside ``fmt``'s range (before the format is known, outside every
    format's), naming where the level was set."""
    level = settings["level"]
    if level.value is None:
        return
    formats = [fmt] if fmt is not None else list(CompressionFormat)
    low = min(f.level_range[0] for f in formats)
    high = max(f.level_range[1] for f in formats)
    if not low <= level.value <= high:
        what = fmt.value if fmt is not None else "every format"
        raise SettingsError(
            f"bad value for 'level' {_where(level.source)}: {level.value} is out of range for "
            f"{what} ({low}-{high})"
        )


def resolve(
    start: str,
    flags: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
) -> dict[str, Setting]:
    """Every key's effective value and its source.

    ``flags`` holds only the options given; its "excludes" are (pattern, origin) pairs. Every
    value is checked where it is read, so an error names the key and its file, variable or flag.
    """
    env = os.environ if environ is None else environ
    defaults = ArchiveConfig()
    settings: dict[str, Setting] = {
        "level": Setting(None, "default"),
        "threads": Setting(defaults.thread_pool_size, "default"),
        "format": Setting(None, "default"),
        "reproducible": Setting(False, "default"),
        "excludes": Setting(
            list(defaults.exclude_patterns), "default", ["default"] * len(defaults.exclude_patterns)
        ),
        **{
            f"limits.{n}": Setting(getattr(defaults.limits, n), "default") for n in LIMIT_FIELDS
        },
    }
    layers: list[tuple[str, dict[str, Any]]] = []
    found = find_config_file(start)
    if found is not None:
        path, table = found
        flat = _flatten(table, path)
        layers.append(
            (path, {k: _convert(k, v, KEYS[k].check, path) for k, v in flat.items()})
        )
    layers.append(
        (
            "env",
            {
                k: _convert(k, env[spec.env], spec.parse, f"${spec.env}")
                for k, spec in KEYS.items()
                if spec.env in env
            },
        )
    )
    layers.append(
        ("flag", {k: _convert(k, v, KEYS[k].check, "flag")
                  for k, v in flags.items() if k != "excludes"})
    )
    for origin, values in layers:
        for key, value in values.items():
            source = f"${KEYS[key].env}" if origin == "env" else origin
            if key == "excludes":
                _add_excludes(settings[key], [(p, source) for p in value], source)
            else:
                settings[key] = Setting(value, source)
    if flags.get("excludes"):
        _add_excludes(settings["excludes"], flags["excludes"], "flag")
    threads, cpus = settings["threads"], available_cpus()
    if threads.value > cpus:  # as ArchiveConfig caps it: show the count an operation uses
        settings["threads"] = Setting(cpus, f"{threads.source}, capped at the CPUs available")
    # The configured format is only a default (the output's extension decides), so the level
    # is checked against it by output_format, once the output is known; here, against every
    # format's range.
    check_level(settings, None)
    return settings


def _add_excludes(setting: Setting, patterns: list[tuple[str, str]], source: str) -> None:
    setting.value = [*setting.value, *(p for p, _ in patterns)]
    setting.origins = [*setting.origins, *(o for _, o in patterns)]
    setting.source = f"{setting.source} + {source}"


def output_format(
    settings: Mapping[str, Setting], output: str | None
) -> CompressionFormat | None:
    """The format ``create`` writes ``output`` in (None: a dry run without one, the
    configured format), its level checked against it.

    A recognised extension decides: ``--format`` contradicting it is an error (``-o x.tar.gz
    --format zip`` would write a zip named .tar.gz), while a format from the environment or a
    file is a default, used only where the extension says nothing, so a global
    ARCMAN_FORMAT=tar.zst does not make ``-o x.zip`` fail."""
    requested = settings["format"]
    fmt = CompressionFormat(requested.value) if requested.value else None
    named: CompressionFormat | None = None
    if output is not None:
        with contextlib.suppress(UnsupportedFormatError):
            named = CompressionFormat.from_extension(output)
    if named is not None and fmt not in (None, named) and requested.source == "flag":
        raise SettingsError(
            f"--format {requested.value} contradicts the extension of {output!r} "
            f"({named.value}): drop one, or name the output for the format"
        )
    chosen = named or fmt
    check_level(settings, chosen)
    return chosen


def to_config(settings: Mapping[str, Setting], **extra: Any) -> ArchiveConfig:
    """Build the ArchiveConfig the settings describe (``extra`` adds or overrides per-run
    options, such as the format ``output_format`` chose)."""
    limits = ExtractionLimits(**{n: settings[f"limits.{n}"].value for n in LIMIT_FIELDS})
    fmt = settings["format"].value
    values: dict[str, Any] = {
        "compression_level": settings["level"].value,
        "thread_pool_size": settings["threads"].value,
        "format": CompressionFormat(fmt) if fmt else None,
        "reproducible": settings["reproducible"].value,
        "exclude_patterns": settings["excludes"].value,
        "limits": limits,
    }
    return ArchiveConfig(**{**values, **extra})
