"""Fixtures for report tests: the realistic samples from :mod:`collector.reports.sample`."""

from __future__ import annotations

import pytest

from collector.reports import FaultAnalysisReport, InspectionReport
from collector.reports.sample import sample_fault_analysis, sample_inspection


@pytest.fixture(scope="session")
def inspection() -> InspectionReport:
    return sample_inspection()


@pytest.fixture(scope="session")
def fault() -> FaultAnalysisReport:
    return sample_fault_analysis()
