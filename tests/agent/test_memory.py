"""The agent's memory measures keep behaviour: params defaults, start-up hooks."""

from __future__ import annotations

import gc
import os

import pytest

from agent import memory
from checks.registry import all_checks


@pytest.mark.parametrize("name", list(all_checks()))
def test_defaults_without_the_validator_equal_validated_defaults(name: str) -> None:
    params = all_checks()[name].params
    defaults = params.defaults()
    assert type(defaults) is params
    assert defaults == params.model_validate({})
    assert defaults.model_dump() == params.model_validate({}).model_dump()


def test_before_load_disables_pydantic_plugins_unless_the_environment_says(monkeypatch) -> None:
    monkeypatch.delenv("PYDANTIC_DISABLE_PLUGINS", raising=False)
    memory.before_load()
    assert os.environ["PYDANTIC_DISABLE_PLUGINS"] == "__all__"
    monkeypatch.setenv("PYDANTIC_DISABLE_PLUGINS", "logfire")
    memory.before_load()
    assert os.environ["PYDANTIC_DISABLE_PLUGINS"] == "logfire"


def test_after_start_freezes_collects_and_trims() -> None:
    try:
        memory.after_start()
        assert gc.get_freeze_count() > 0
        assert isinstance(memory.malloc_trim(), bool)
    finally:
        gc.unfreeze()
