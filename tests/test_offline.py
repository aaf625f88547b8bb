"""Without the hub (HF_HUB_OFFLINE=1, or no network) the data loader fails in seconds, not after the hub
client's retries, with the one-line error that names --data-dir."""

import time

import datasets
import pytest
from huggingface_hub import constants

from smart_tune.data import load_split
from smart_tune.errors import DataError


@pytest.fixture
def no_glue_dir(monkeypatch):
    monkeypatch.delenv("GLUE_DIR", raising=False)


def test_offline_hub_fails_at_once(no_glue_dir, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    started = time.monotonic()
    with pytest.raises(DataError, match="pass --data-dir or set GLUE_DIR"):
        load_split("rte", "dev")
    assert time.monotonic() - started < 10


def test_unreachable_hub_fails_at_once_without_retries(no_glue_dir, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", "https://hub.invalid")  # .invalid never resolves
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)

    def load_dataset(*args, **kwargs):
        raise AssertionError("the hub client was called: it would retry for about 25 s")

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    started = time.monotonic()
    with pytest.raises(DataError) as error:
        load_split("rte", "dev")
    assert time.monotonic() - started < 10
    message = str(error.value)
    assert "cannot reach it (hub.invalid" in message and "pass --data-dir or set GLUE_DIR" in message
    assert "\n" not in message
