"""The ``emergency:`` config section: defaults, errors naming the path, the windows file."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.cli.config import ConfigError, load_text
from collector.emergency.live import LiveDetection, make_observer
from collector.store import Store


def test_detection_is_on_by_default_and_can_be_turned_off(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        on = make_observer(store, load_text(f"state_dir: {tmp_path}"))
        assert isinstance(on, LiveDetection)
        on.close()
        off = load_text(f"state_dir: {tmp_path}\nemergency: {{detection: {{enabled: false}}}}")
        assert make_observer(store, off) is None
    finally:
        store.close()


@pytest.mark.parametrize(
    ("text", "path"),
    [
        pytest.param(
            "emergency: {detection: {silent_after_s: 0}}", "emergency.detection.silent_after_s", id="timeout"
        ),
        pytest.param(
            "emergency: {detection: {detector: {enter_zz: 3}}}", "emergency.detection.detector", id="tuning"
        ),
        pytest.param(
            "emergency: {cases: {min_severity: BAD}}", "emergency.cases.min_severity", id="severity"
        ),
        pytest.param(
            "emergency: {windows: [{name: w, customer: acme, timezone: Mars/Base,"
            " weekly: {days: [sat], at: '1:00', duration: 1h}}]}",
            "emergency.windows.0.timezone",
            id="window zone",
        ),
        pytest.param("emergency: {notiffy: {}}", "emergency.notiffy", id="unknown key"),
    ],
)
def test_bad_settings_name_the_path(text: str, path: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_text(text, "c.yaml")
    assert f"c.yaml: {path}" in str(err.value)


def test_windows_file_is_loaded_and_its_errors_name_the_file(tmp_path: Path) -> None:
    windows = tmp_path / "windows.yaml"
    windows.write_text(
        "windows:\n  - {name: nightly, customer: acme, timezone: UTC,"
        " cron: {expression: '0 2 * * *', duration: 1h}}\n"
    )
    store = Store.open(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        cfg = load_text(f"state_dir: {tmp_path}\nemergency: {{windows_file: {windows}}}")
        observer = make_observer(store, cfg)
        assert isinstance(observer, LiveDetection)
        assert [w.name for w in observer.calendar.windows] == ["nightly"]
        observer.close()
        windows.write_text(
            "windows:\n  - {name: bad, customer: acme, timezone: UTC, cron: {expression: nope}}\n"
        )
        with pytest.raises(ValueError) as err:  # what the ingest worker reports at start-up
            make_observer(store, cfg)
        assert f"{windows}: windows.0.cron" in str(err.value)
    finally:
        store.close()
