"""captum 0.9.0's own tests of Saliency, InputXGradient, IntegratedGradients and NoiseTunnel
on refimpl.torch's front ends, imports redirected (opt-in: ``REFIMPL_UPSTREAM=1``; see
tests/upstream/captum.py for the selection and the source of the tests)."""

from __future__ import annotations

import pytest

from tests.upstream import captum as suite


def test_captum_suite_fails_only_where_expected():
    pytest.importorskip("captum")
    outcomes = suite.run()
    assert len(outcomes) >= 100, f"too few tests ran: {len(outcomes)}"
    failed = set(suite.failures(outcomes))
    assert failed == set(suite.EXPECTED_FAILURES), (
        f"unexpected failures: {sorted(failed - set(suite.EXPECTED_FAILURES))}; "
        f"expected failures that passed: {sorted(set(suite.EXPECTED_FAILURES) - failed)}"
    )
