import dataclasses
import re
from typing import Annotated, Literal

import pytest
from pydantic import Field

from genmodels.config import ParamsError, as_dict, config, from_dict, load_section
from genmodels.data.download import DownloadConfig
from genmodels.data.text import PrepareTextConfig


@config
class Inner:
    size: Annotated[int, Field(gt=0)]


@config
class Outer:
    name: Literal["a", "b"]
    rate: Annotated[float, Field(gt=0, le=1)] = 0.5
    inner: Inner = None  # type: ignore[assignment]


def test_valid_section_builds_a_frozen_dataclass():
    cfg = from_dict(Outer, {"name": "a", "rate": 1, "inner": {"size": 3}}, "stage")
    assert cfg.rate == 1.0 and cfg.inner.size == 3
    assert as_dict(cfg) == {"name": "a", "rate": 1.0, "inner": {"size": 3}}
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.rate = 0.1


@pytest.mark.parametrize(
    "data, message",
    [
        ({"name": "a", "colour": 1}, "stage.colour: unknown key"),
        ({"rate": 0.1}, "stage.name: missing key"),
        ({"name": "c"}, "stage.name: Input should be 'a' or 'b'"),
        ({"name": "a", "rate": "fast"}, "stage.rate: Input should be a valid number"),
        ({"name": "a", "rate": 0}, "stage.rate: Input should be greater than 0"),
        ({"name": "a", "inner": {"size": 0}}, "stage.inner.size: Input should be greater than 0"),
    ],
)
def test_bad_params_name_the_key(data, message):
    with pytest.raises(ParamsError, match=re.escape(message)):
        from_dict(Outer, data, "stage")


def test_load_section_reads_dotted_sections(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(
        "prepare_text:\n  toy:\n    split: blocks\n    val_fraction: 0.1\n"
        "    test_fraction: 0.1\n    newline: line\n"
    )
    cfg = load_section(params, "prepare_text.toy", PrepareTextConfig)
    assert cfg.min_freq == 1 and cfg.split == "blocks"
    with pytest.raises(ParamsError, match="missing section prepare_text.other"):
        load_section(params, "prepare_text.other", PrepareTextConfig)


def test_missing_or_malformed_params_file(tmp_path):
    with pytest.raises(ParamsError, match="params file not found"):
        load_section(tmp_path / "nope.yaml", "download", DownloadConfig)
    bad = tmp_path / "bad.yaml"
    bad.write_text("download: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_section(bad, "download", DownloadConfig)


def test_the_projects_params_file_is_valid():
    from conftest import ROOT

    load_section(ROOT / "params.yaml", "download", DownloadConfig)
    for corpus in ("shakespeare", "sherlock"):
        load_section(ROOT / "params.yaml", f"prepare_text.{corpus}", PrepareTextConfig)
