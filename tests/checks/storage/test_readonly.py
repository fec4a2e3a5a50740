from __future__ import annotations

from typing import Any

import pytest

from checks.api import Metric, Result, Severity, Unit
from checks.probe import Probe
from checks.storage.readonly import (
    READONLY,
    ReadonlyParams,
    ReadonlySection,
    collect_readonly,
    evaluate_readonly,
)
from tests.conftest import fixture_probe


def test_collect_reads_options_of_real_mounts():
    section = collect_readonly(fixture_probe("sp-mounts"), ReadonlyParams())
    assert section.mounts == (
        ("/", False),
        ("/data", False),
        ("/srv/bind", False),
        ("/mnt/my disk", True),
        ("/mnt/nfs", False),
        ("/mnt/gone", False),
        ("/var/lib/docker/overlay2/x/merged", False),
    )  # the squashfs snap (always ro) and pseudo filesystems are not looked at


def test_collect_rejects_garbled_mounts(tmp_path):
    (tmp_path / "proc" / "self").mkdir(parents=True)
    (tmp_path / "proc" / "self" / "mounts").write_text("only-one-field\n")
    with pytest.raises(ValueError, match="/proc/self/mounts line 1"):
        collect_readonly(Probe(root=tmp_path), ReadonlyParams())


def _metrics(readonly, remounted):
    return [
        Metric("storage_fs_readonly_mounts_count", readonly, Unit.COUNT),
        Metric("storage_fs_remounted_ro_count", remounted, Unit.COUNT),
    ]


REMOUNTED = "Filesystem became read-only (it was writable before): check the kernel log for I/O errors"


@pytest.mark.parametrize(
    ("runs", "expected_last"),
    [
        pytest.param(
            [(("/", False), ("/data", False))],
            [Result(Severity.OK, "OK", "2 writable, 0 read-only (never seen writable)"), *_metrics(0, 0)],
            id="first run all writable",
        ),
        pytest.param(
            [(("/", False), ("/data", False)), (("/", False), ("/data", True))],
            [Result(Severity.CRIT, "FS_REMOUNTED_RO", REMOUNTED, "/data"), *_metrics(1, 1)],
            id="writable then read-only is critical",
        ),
        pytest.param(
            [
                (("/", False), ("/data", False)),
                (("/", False), ("/data", True)),
                (("/", False), ("/data", True)),
            ],
            [Result(Severity.CRIT, "FS_REMOUNTED_RO", REMOUNTED, "/data"), *_metrics(1, 1)],
            id="stays critical while still read-only",
        ),
        pytest.param(
            [
                (("/", False), ("/data", False)),
                (("/", False), ("/data", True)),
                (("/", False), ("/data", False)),
            ],
            [Result(Severity.OK, "OK", "2 writable, 0 read-only (never seen writable)"), *_metrics(0, 0)],
            id="recovers when writable again",
        ),
        pytest.param(
            [(("/", False), ("/iso", True)), (("/", False), ("/iso", True))],
            [Result(Severity.OK, "OK", "1 writable, 1 read-only (never seen writable)"), *_metrics(1, 0)],
            id="always read-only is ignored",
        ),
        pytest.param(
            [(("/", True),)],
            [
                Result(
                    Severity.CRIT,
                    "FS_READ_ONLY",
                    "Filesystem is read-only but must be writable (listed in expected_rw)",
                    "/",
                ),
                *_metrics(1, 0),
            ],
            id="root read-only on first run is critical",
        ),
        pytest.param(
            [(("/", False),), (("/", True),)],
            [Result(Severity.CRIT, "FS_REMOUNTED_RO", REMOUNTED, "/"), *_metrics(1, 1)],
            id="root remounted gives one result not two",
        ),
        pytest.param(
            [(("/", False), ("/data", False)), (("/", False), ("/data", True)), (("/", False),)],
            [Result(Severity.OK, "OK", "1 writable, 0 read-only (never seen writable)"), *_metrics(0, 0)],
            id="unmounted mount is forgotten",
        ),
    ],
)
def test_evaluate_over_runs(runs, expected_last):
    store: dict[str, Any] = {}
    out: list[Any] = []
    for mounts in runs:
        out = list(evaluate_readonly(ReadonlyParams(), ReadonlySection(mounts), store))
    assert out == expected_last
    assert READONLY.metric_names == {m.name for m in out if isinstance(m, Metric)}
