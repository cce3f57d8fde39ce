"""Configuration is data: dataclasses with defaults, turned into plain dicts for files and keys.

* :func:`to_dict` / :func:`from_dict` convert (nested) config dataclasses to and from
  JSON-compatible dicts, so that every result file can hold its exact configuration and a
  run can be rebuilt from it.
* :func:`load_file` reads a TOML, YAML or JSON file into a dict.
* :func:`stable_hash` hashes any JSON-compatible value independently of dict ordering;
  the feature cache uses it for its keys.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from avemo.errors import CheckpointError, ConfigError

T = TypeVar("T")


def to_dict(config: Any) -> Any:
    """Turn a config dataclass (possibly nested, with tuples/paths/enums) into JSON-compatible data."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, dict):
        return {str(k): to_dict(v) for k, v in config.items()}
    if isinstance(config, list | tuple):
        return [to_dict(v) for v in config]
    if isinstance(config, Path):
        return str(config)
    if hasattr(config, "value") and hasattr(type(config), "__members__"):  # Enum
        return config.value
    if hasattr(config, "item") and callable(config.item):  # numpy scalar
        return config.item()
    return config


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any or annotation is None:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except (ConfigError, TypeError, ValueError) as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: {value!r} fits none of {annotation}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table/mapping, got {type(value).__name__}")
        return from_dict(annotation, value, where=where)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], where) for v in value)
        if args and len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(v, a, where) for v, a in zip(value, args or [Any] * len(value), strict=True))
    if origin in (list, typing.List):  # noqa: UP006
        return [_coerce(v, args[0] if args else Any, where) for v in value]
    if origin in (dict, typing.Dict):  # noqa: UP006
        return dict(value)
    if annotation is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if annotation is int and isinstance(value, bool):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if annotation is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if annotation is Path:
        return Path(value)
    if isinstance(annotation, type) and not isinstance(value, annotation):
        raise ConfigError(f"{where}: expected {annotation.__name__}, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], *, where: str | None = None) -> T:
    """Build config dataclass ``cls`` from a dict, checking names and types.

    Unknown keys are an error (a typo in a config file must not be silently ignored). ``where``
    names the config in the errors (``"whisper_base config: ..."``; default: the class name), also
    in a ConfigError that the class itself raises (its ``__post_init__``) when a ``where`` is given.
    """
    named, where = where, where or cls.__name__
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown option(s) {', '.join(map(str, unknown))}; known: {', '.join(sorted(names))}")
    # said by the constructor: "FoldPlan.__init__() missing 1 required positional argument: 'speakers'"
    missing = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in data
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{where}: missing option(s) {', '.join(missing)}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except ConfigError as exc:  # the class's own check: say which config, once (its class and fields kept)
        if named is not None and not exc.reason.startswith(named):
            exc.reason = f"{named}: {exc.reason}"
        raise


def replace(config: T, **overrides: Any) -> T:
    """``dataclasses.replace`` with the same name and type checks as :func:`from_dict`."""
    merged = to_dict(config)
    merged.update(overrides)
    return from_dict(type(config), merged)


def parse_options(pairs: Iterable[str], what: str) -> dict[str, Any]:
    """``key=value`` texts (the ``:``-separated parts of a spec such as ``mfcc:n_mfcc=13``) as a dict.

    Values are read as JSON when they parse (numbers, true/false/null, ``[112,112]``), else as
    text. ``what`` names the spec in the error of a part that is not ``key=value``.
    """
    options: dict[str, Any] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise ConfigError(f"{what}: option {pair!r} is not key=value")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return options


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML (.toml), YAML (.yaml/.yml) or JSON (.json) config file; one that cannot be read, is
    not UTF-8, does not parse or gives a key twice is refused in one line naming it (ConfigError)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file ({exc.strerror or exc})", path) from None
    except UnicodeDecodeError as exc:  # a binary file, or text in another encoding
        raise ConfigError(f"not UTF-8 text (byte {exc.start} is 0x{exc.object[exc.start]:02x})", path) from None
    try:
        if path.suffix == ".toml":
            return tomllib.loads(text)
        if path.suffix in (".yaml", ".yml"):
            data = _load_yaml(text)
            return data if data is not None else {}
        if path.suffix == ".json":
            return json.loads(text, object_pairs_hook=_unique_keys)
    except Exception as exc:  # parse errors of three libraries (and a duplicate key)
        raise ConfigError(f"not valid {path.suffix[1:].upper()}: {exc}", path) from None
    raise ConfigError("unknown config format (use .toml, .yaml or .json)", path)


def _unique_keys(pairs: list[tuple[Any, Any]]) -> dict:
    """A JSON object whose keys are all different, else ValueError. TOML refuses a key given twice, but
    JSON and YAML parsers keep its last value without a word: ``balance`` given twice in a --corpora
    file silently became the second."""
    seen: set = set()
    for key, _ in pairs:
        if key in seen:
            raise ValueError(f"the key {key!r} is given twice")
        seen.add(key)
    return dict(pairs)


def _load_yaml(text: str) -> Any:
    """``yaml.safe_load`` that refuses a key given twice in one mapping (see :func:`_unique_keys`); a
    key that a merge (``<<: *anchor``) brings in may still be overridden, as YAML means it."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        pass

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = loader.construct_object(key_node, deep=True)
            if key in seen:
                raise ValueError(f"the key {key!r} is given twice (line {key_node.start_mark.line + 1})")
            seen.add(key)
        return loader.construct_mapping(node, deep=True)

    UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader: no Python objects


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal data gives equal text."""
    return json.dumps(to_dict(value), sort_keys=True, separators=(",", ":"), allow_nan=True)


def stable_hash(value: Any, length: int = 64) -> str:
    """SHA-256 hex digest of the canonical JSON of ``value``."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()[:length]


def read_format_json(meta_path: Path, where: Path, *, fmt: str, version: int, noun: str, what: str) -> dict[str, Any]:
    """A JSON object whose ``format`` / ``format_version`` must be ``fmt`` / ``version``
    (checkpoints, predictor bundles, their ONNX exports); CheckpointError naming ``where`` otherwise.
    Here, below every layer, so that reading such a file needs neither torch nor the model zoo."""
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"unreadable {meta_path.name} ({exc})", where) from None
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise CheckpointError(f"not {what} ({meta_path.name} has no format '{fmt}')", where)
    if meta.get("format_version") != version:
        raise CheckpointError(
            f"{noun} format version {meta.get('format_version')} is not supported (this avemo reads {version})", where
        )
    return meta
