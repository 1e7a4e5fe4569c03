"""The PyTorch perturbations port's own tests on this project's front end (opt-in:
REFIMPL_UPSTREAM=1, see conftest.py). The script is
``python -m tests.upstream.perturbations_port``."""

from __future__ import annotations

import pytest

from tests.upstream import perturbations_port as suite


def test_failures_are_exactly_the_expected_ones():
    pytest.importorskip("torch")
    result = suite.run()
    assert sorted(result.failed) == sorted(suite.EXPECTED_FAILURES), result.summary()
    assert len(result.passed) >= 10, result.summary() + "\n" + result.output[-3000:]
