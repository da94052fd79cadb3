"""A tagged subset of the CWL v1.2 conformance tests, through StreamFlow's ``cwl-runner``:
ours passes every test StreamFlow's own data manager passes, on the local node and with
every step on an SSH deployment (``nox -s cwl`` runs them all)."""

from __future__ import annotations

import pytest

from tests.streamflow import cwl_suite

SUBSET = "initial_work_dir,inplace_update,load_listing"
"""The tests that stage the most data between steps (about 24, a minute or two)."""


@pytest.mark.timeout(1200)
def test_ours_passes_every_test_streamflows_own_manager_passes() -> None:
    source = cwl_suite.suite_directory()
    if source is None:
        pytest.skip("the CWL v1.2 conformance tests are not here (set CWL_V12_TESTS)")
    results = cwl_suite.run(source, ["--tags", SUBSET], cwl_suite.PLACEMENTS, jobs=2)
    for placement in cwl_suite.PLACEMENTS:
        theirs, ours = (results[(placement, m)] for m in cwl_suite.MANAGERS)
        passed = {name for name, outcome in theirs.items() if outcome == "passed"}
        assert len(passed) >= len(theirs) // 2, f"the harness looks broken: {theirs}"
        assert {name for name in passed if ours.get(name) != "passed"} == set(), placement
