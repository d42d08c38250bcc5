"""Settings from ``params.yaml`` into frozen, validated dataclasses.

Every stage reads one section of ``params.yaml`` into a config class declared
with :func:`config`. An unknown key, a missing key, a wrong type, an
out-of-range value or a float that is not finite (``.inf``, ``.nan``) raises
:class:`ParamsError` naming the full key (``prepare_text.shakespeare.min_freq``),
on one line, before the stage does any work.

Validation is pydantic's (types, ``Field(gt=0)`` ranges, ``extra="forbid"``);
the classes stay plain frozen dataclasses, so ``dataclasses.asdict`` works and
MLflow gets the same dict that ``params.yaml`` holds.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

import pydantic
import yaml
from pydantic import AfterValidator, ConfigDict, TypeAdapter

T = TypeVar("T")

# allow_inf_nan: a learning rate of .inf passes every `gt=0` check, then trains to NaN
_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)

_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def _check_device(value: str) -> str:
    if not _DEVICE.fullmatch(value):
        raise ValueError("expected auto, cpu, cuda, cuda:N or mps")
    return value


# A torch device name that this project can run on; anything else fails at load time.
Device = Annotated[str, AfterValidator(_check_device)]


class ParamsError(ValueError):
    """A params section that does not match its config class."""


def config(cls: type[T]) -> type[T]:
    """Decorator: a frozen dataclass whose fields are validated on construction."""
    return pydantic.dataclasses.dataclass(frozen=True, config=_CONFIG)(cls)


def from_dict(cls: type[T], data: Any, where: str) -> T:
    """Build ``cls`` from ``data``; errors name keys as ``<where>.<key>``."""
    if not isinstance(data, Mapping):
        raise ParamsError(f"{where}: expected a mapping of settings, got {type(data).__name__}")
    try:
        return TypeAdapter(cls).validate_python(dict(data))
    except pydantic.ValidationError as err:
        raise ParamsError(_describe(err, where)) from None


def _describe(err: pydantic.ValidationError, where: str) -> str:
    lines = []
    for e in err.errors(include_url=False):
        # pydantic reports model-level checks (__post_init__) with an empty loc.
        key = ".".join([where, *(str(p) for p in e["loc"])])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
            msg = "unknown key"
        elif e["type"] in ("missing", "missing_argument"):
            msg = "missing key"
        elif "input" in e and not isinstance(e["input"], Mapping):
            msg = f"{msg} (got {e['input']!r})"
        lines.append(f"{key}: {msg}")
    return "invalid params: " + "; ".join(lines)


def read_params(path: str | Path) -> dict:
    """The whole ``params.yaml`` as a dict; a clear error if it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"params file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level")
    return data


def load_section(path: str | Path, section: str, cls: type[T]) -> T:
    """Read dotted ``section`` (``"prepare_text.sherlock"``) of ``path`` into ``cls``."""
    node: Any = read_params(path)
    walked = []
    for part in section.split("."):
        walked.append(part)
        if not isinstance(node, Mapping) or part not in node:
            raise ParamsError(f"{path}: missing section {'.'.join(walked)}")
        node = node[part]
    return from_dict(cls, node, section)


def as_dict(cfg: Any) -> dict:
    """A config as a plain dict (for MLflow params and checkpoints)."""
    return dataclasses.asdict(cfg)
