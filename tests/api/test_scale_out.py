"""Replicas as one service (real processes on 127.0.0.x): a late replica and a SIGTERMed one under
a round_robin client without retries; a replica found only by re-resolving a DNS name."""

from __future__ import annotations

from pathlib import Path

from bench.scale_out import churn, reresolution

AGE = 2.0


def test_replicas_come_and_go_without_a_failed_call(tmp_path: Path) -> None:
    report = churn(age=AGE, seconds=16.0, workers=3, logs=tmp_path)
    print(report)
    assert report["failed"] == 0, report["errors"]
    assert report["sigterm_exit_code"] == 0
    assert set(report["spread_before_late"]) == {"r0", "r1"}  # type: ignore[arg-type]  # (until r2 was launched)
    assert report["late_share_from_2x_age_after_start"] >= 0.25, report
    after: dict[str, int] = report["spread_after_sigterm"]  # type: ignore[assignment]
    assert after.get("r0", 0) < 0.05 * sum(after.values()), after  # the drained replica got (almost) nothing new


def test_a_replica_found_by_reresolution_is_reached_within_two_connection_ages(tmp_path: Path) -> None:
    report = reresolution(age=AGE, workers=2, logs=tmp_path)
    print(report)
    assert set(report["spread_before_change"]) == {"A"}  # type: ignore[arg-type]
    assert report["seconds_to_first_call_on_new_replica"] is not None and report["seconds_to_first_call_on_new_replica"] <= 2 * AGE, report
    assert report["failed"] == 0, report["errors"]
