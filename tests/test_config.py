"""``avemo.config.from_dict``: every error names the config it is about, once."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from avemo import config as cfg
from avemo.errors import ConfigError


@dataclass(frozen=True)
class _Checked:
    size: int = 1
    named: bool = False  # raise a message that already names the config

    def __post_init__(self):
        if self.size < 1:
            prefix = "thing config: " if self.named else ""
            raise ConfigError(f"{prefix}size must be at least 1, got {self.size}", "some.toml" if self.named else None)


def test_a_check_of_the_class_itself_is_told_which_config_it_is_about():
    with pytest.raises(ConfigError) as info:
        cfg.from_dict(_Checked, {"size": 0}, where="thing config")
    assert str(info.value) == "thing config: size must be at least 1, got 0"
    with pytest.raises(ConfigError) as info:  # already named: not twice; its file is kept
        cfg.from_dict(_Checked, {"size": 0, "named": True}, where="thing config")
    assert str(info.value) == "some.toml: thing config: size must be at least 1, got 0"
    with pytest.raises(ConfigError) as info:  # no where given: the class's own message, as before
        cfg.from_dict(_Checked, {"size": 0})
    assert str(info.value) == "size must be at least 1, got 0"


def test_an_extractor_config_error_names_the_extractor():
    from avemo.features import get_extractor

    with pytest.raises(ConfigError) as info:
        get_extractor("whisper_base", layer=99)
    assert str(info.value) == "whisper_base config: Whisper-base has hidden states 0..6, got layer=99"


def test_a_missing_required_option_is_named_without_python_internals(tmp_path):
    """A fold plan without its "speakers" said "FoldPlan.__init__() missing 1 required positional argument:
    'speakers'"."""
    from avemo.datasets.folds import FORMAT, FoldPlan

    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"format": FORMAT, "name": "mine", "dataset": "ravdess", "folds": []}))
    with pytest.raises(ConfigError) as info:
        FoldPlan.from_json(path)
    assert str(info.value) == f"{path}: fold plan: missing option(s) speakers"
