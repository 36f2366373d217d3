"""retrain.trigger: what starts a retraining, given DVC's changes and the monitor's verdict."""

from __future__ import annotations

import pytest

from ferops.ops.retrain import reasons_to_retrain, skip_reason


@pytest.mark.parametrize(
    ("trigger", "changed", "verdict", "expected"),
    [
        ("data", True, "ok", (True, False)),
        ("data", False, "drift", (False, False)),  # drift alone waits for new data
        ("drift", True, "ok", (False, False)),
        ("drift", False, "drift", (False, True)),
        ("either", False, "drift", (False, True)),
        ("either", True, "too few answers", (True, False)),
        ("either", False, "unavailable", (False, False)),
    ],
)
def test_each_trigger_retrains_on_its_own_evidence(trigger, changed, verdict, expected):
    assert reasons_to_retrain(trigger, changed, verdict) == expected


def test_a_skipped_run_says_why_in_the_terms_of_its_trigger():
    drift = {"verdict": "drift", "reasons": ["brightness PSI 0.41 > 0.20"]}
    assert "retrain.trigger: data waits for new data" in skip_reason("data", {}, drift)
    ok = {"verdict": "ok", "reasons": []}
    assert "retrain.trigger is drift and the monitor says ok" in skip_reason(
        "drift", {"ingest": []}, ok
    )
