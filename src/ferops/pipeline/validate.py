"""Validate stage: a Great Expectations suite over a per-image statistics table.

GX validates tables, so each processed face becomes one row (shape, dtype, pixel range,
mean, std, label, sha1, split). Expectations marked critical stop the pipeline; warnings are
reported in Data Docs only. On success the results and Data Docs replace reports/validation/;
on failure they go to reports/validation-failed/ and the last good report stays where it was.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # no phoning home from a closed network

import great_expectations as gx
import great_expectations.expectations as gxe
import numpy as np
import pandas as pd
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.base import ProgressBarsConfig
from great_expectations.expectations.metadata_types import FailureSeverity
from great_expectations.expectations.row_conditions import Column

from ferops.data.faceset import FaceSet, face_sha1, load_faceset
from ferops.install.web_assets import localise_pages
from ferops.kernel.config import SPLITS, Params, ValidateConfig
from ferops.kernel.emotions import EMOTIONS, NUM_CLASSES
from ferops.kernel.errors import ValidationFailed
from ferops.kernel.files import replace_dir, write_json
from ferops.kernel.layout import Layout

log = logging.getLogger(__name__)

SUITE = "processed_faces"
SITE = "ferops"
_SITE_DIR = "uncommitted/ferops_data_docs"  # relative to the GX project folder
_RESULT_FORMAT = {"result_format": "SUMMARY", "unexpected_index_column_names": ["source"]}


def face_statistics(faceset: FaceSet) -> pd.DataFrame:
    """One row per image: where it is, its label, and the pixel statistics GX checks."""
    frames = []
    for split in SPLITS:
        part = faceset[split]
        flat = part.x.reshape(len(part), -1).astype(np.float32)
        frames.append(
            pd.DataFrame(
                {
                    "split": split,
                    "source": part.sources,
                    "label": part.y.astype(np.int64),
                    "split_label": [f"{split}:{EMOTIONS[y]}" for y in part.y],
                    "split_size": len(part),
                    "height": part.x.shape[1],
                    "width": part.x.shape[2],
                    "dtype": str(part.x.dtype),
                    "min": flat.min(axis=1) if len(part) else [],
                    "max": flat.max(axis=1) if len(part) else [],
                    "mean": flat.mean(axis=1) if len(part) else [],
                    "std": flat.std(axis=1) if len(part) else [],
                    "sha1": face_sha1(part.x),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def build_suite(config: ValidateConfig) -> gx.ExpectationSuite:
    """The data contract of data/processed, as a GX suite."""
    critical, warning = FailureSeverity.CRITICAL, FailureSeverity.WARNING
    every_split_class = [f"{s}:{e}" for s in SPLITS for e in EMOTIONS]
    expectations = [
        gxe.ExpectColumnValuesToBeBetween(column="height", min_value=48, max_value=48),
        gxe.ExpectColumnValuesToBeBetween(column="width", min_value=48, max_value=48),
        gxe.ExpectColumnValuesToBeInSet(column="dtype", value_set=["uint8"]),
        gxe.ExpectColumnValuesToBeBetween(column="min", min_value=0, max_value=255),
        gxe.ExpectColumnValuesToBeBetween(column="max", min_value=0, max_value=255),
        gxe.ExpectColumnValuesToBeBetween(column="std", min_value=config.min_std),
        gxe.ExpectColumnValuesToBeInSet(column="label", value_set=list(range(NUM_CLASSES))),
        gxe.ExpectColumnDistinctValuesToEqualSet(column="split", value_set=list(SPLITS)),
        gxe.ExpectColumnDistinctValuesToContainSet(
            column="split_label", value_set=every_split_class
        ),
        gxe.ExpectColumnValuesToBeUnique(column="sha1"),
        *[
            gxe.ExpectColumnValuesToBeBetween(
                column="split_size",
                min_value=config.min_split_size[split],
                row_condition=Column("split") == split,
            )
            for split in SPLITS
        ],
        # Nearly black or white faces are suspicious but can be real (night shots, flashes).
        gxe.ExpectColumnValuesToBeBetween(
            column="mean", min_value=8, max_value=247, mostly=0.99, severity=warning
        ),
    ]
    suite = gx.ExpectationSuite(name=SUITE)
    for expectation in expectations:
        if expectation.severity != warning:
            expectation.severity = critical
        suite.add_expectation(expectation)
    return suite


@dataclass
class ValidationOutcome:
    """Whether the data passed, and one line per failed expectation."""

    success: bool
    failed_critical: list[str]
    failed_warning: list[str]
    statistics: dict[str, Any]


@dataclass
class ValidationRun:
    outcome: ValidationOutcome
    result: Any  # GX CheckpointResult
    suite: gx.ExpectationSuite
    site_dir: Path


def run_suite(
    table: pd.DataFrame,
    config: ValidateConfig,
    *,
    gx_root: Path,
    run_name: str = "validate",
) -> ValidationRun:
    """Validate a face-statistics table with the suite in the GX file context under `gx_root`.

    `run_name` names the run in the Data Docs' index (GX shows `__none__` without one)."""
    context = _context(gx_root)
    site_dir = gx_root / "gx" / _SITE_DIR
    shutil.rmtree(site_dir, ignore_errors=True)  # one run per site: no stale pages
    suite = build_suite(config)
    result = _checkpoint(context, suite).run(
        batch_parameters={"dataframe": table}, run_id=RunIdentifier(run_name=run_name)
    )
    return ValidationRun(_outcome(result), result, suite, site_dir)


def run(params: Params, layout: Layout) -> ValidationOutcome:
    """Check data/processed with the Great Expectations suite; raise ValidationFailed naming
    each failed critical expectation. Results and Data Docs land in reports/validation only
    when the data passes (else in reports/validation-failed, the good report kept)."""
    suite_run = run_suite(
        face_statistics(load_faceset(layout.processed)),
        params.validate,
        gx_root=layout.root,
        run_name=f"validate-{layout.processed.name}",
    )
    outcome = suite_run.outcome
    passed, failed = layout.validation, layout.validation.with_name("validation-failed")
    target = passed if outcome.success else failed
    _publish(suite_run, target)
    if not outcome.success:
        raise ValidationFailed(
            f"{len(outcome.failed_critical)} critical expectation(s) failed on "
            f"{layout.processed}:\n  - "
            + "\n  - ".join(outcome.failed_critical)
            + f"\nData Docs: {target / 'data_docs' / 'index.html'}"
        )
    for line in outcome.failed_warning:
        log.warning("validation warning: %s", line)
    log.info("validation passed: %d expectations", outcome.statistics["evaluated_expectations"])
    return outcome


def _publish(run: ValidationRun, target: Path) -> None:
    """Write result JSON, the suite and Data Docs to a staging folder, then swap it in."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        outcome = run.outcome
        write_json(
            staged / "result.json",
            {
                "success": outcome.success,
                "failed_critical": outcome.failed_critical,
                "failed_warning": outcome.failed_warning,
                "statistics": outcome.statistics,
                "results": [r.to_json_dict() for r in _expectation_results(run.result)],
            },
        )
        write_json(staged / "suite.json", run.suite.to_json_dict())
        shutil.copytree(run.site_dir, staged / "data_docs")
        if remote := localise_pages(staged / "data_docs"):
            log.info("Data Docs load %d files from CDNs (no offline copies installed)", len(remote))
        replace_dir(staged, target)
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def _context(gx_root: Path) -> Any:
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    context = gx.get_context(mode="file", project_root_dir=str(gx_root))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    if SITE not in context.get_site_names():
        context.add_data_docs_site(
            site_name=SITE,
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": f"{_SITE_DIR}/",
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
    return context


def _checkpoint(context: Any, suite: gx.ExpectationSuite) -> gx.Checkpoint:
    source = context.data_sources.add_or_update_pandas(name="faces")
    asset = next((a for a in source.assets if a.name == "face_statistics"), None)
    asset = asset or source.add_dataframe_asset(name="face_statistics")
    batch = next((b for b in asset.batch_definitions if b.name == "all_images"), None)
    batch = batch or asset.add_batch_definition_whole_dataframe("all_images")
    suite = context.suites.add_or_update(suite)
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=SUITE, data=batch, suite=suite)
    )
    return context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=SUITE,
            validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=[SITE])],
            result_format=_RESULT_FORMAT,
        )
    )


def _expectation_results(result: Any) -> list[Any]:
    return [r for run in result.run_results.values() for r in run.results]


def _outcome(result: Any) -> ValidationOutcome:
    failed: dict[FailureSeverity, list[str]] = {
        FailureSeverity.CRITICAL: [],
        FailureSeverity.WARNING: [],
    }
    for item in _expectation_results(result):
        if item.success:
            continue
        config = item.expectation_config
        severity = FailureSeverity(config.severity)
        failed.setdefault(severity, []).append(describe_failure(item))
    statistics = next(iter(result.run_results.values())).statistics
    critical = failed[FailureSeverity.CRITICAL]
    return ValidationOutcome(
        not critical, critical, failed[FailureSeverity.WARNING], dict(statistics)
    )


def describe_failure(item: Any) -> str:
    """One line a person can act on: which expectation, on what, and example offenders."""
    config = item.expectation_config
    kwargs = {
        k: v
        for k, v in config.kwargs.items()
        if k not in ("batch_id", "result_format") and v is not None
    }
    condition = kwargs.pop("row_condition", None)
    text = f"{config.type}({', '.join(f'{k}={_short(v)}' for k, v in kwargs.items())})"
    if isinstance(condition, dict) and condition.get("type") == "comparison":
        text += f" where {condition['column']['name']} {condition['operator']} "
        text += repr(condition["parameter"])
    res = item.result or {}
    if item.exception_info and item.exception_info.get("raised_exception"):
        return f"{text}: raised {item.exception_info.get('exception_message')}"
    if "unexpected_count" in res:
        examples = [
            row.get("source")
            for row in res.get("partial_unexpected_index_list") or []
            if isinstance(row, dict)
        ][:3]
        text += f": {res['unexpected_count']} row(s) failed"
        if examples:
            text += f", e.g. {', '.join(map(str, examples))}"
    elif res.get("partial_missing_list"):
        text += f": missing {_short(res['partial_missing_list'])}"
    elif res.get("observed_value") is not None:
        text += f": observed {_short(res['observed_value'])}"
    return text


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
