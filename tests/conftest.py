"""Shared fixtures: the real params.yaml, shrunk by TINY; tiny face sets made in memory; each test
marked with its tier (its folder): unit, integration, model or e2e."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from ferops.data.faceset import FaceSet
from ferops.data.sources import synthetic_faceset
from ferops.kernel.config import Params, load_params
from tests.helpers import REPO, free_port, tiny_params_file

# Keep third-party tooling quiet and offline in every test.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def share_the_cores() -> None:
    """Under pytest-xdist (one worker per CPU), each worker's TensorFlow, and the stages it
    starts, gets its share of the cores instead of a thread pool as wide as the machine: pools
    that oversubscribe spin against each other. Two learning tests side by side on 2 cores
    (AMD EPYC, AVX2): 201 s of wall clock each with TensorFlow's default threads, 159 s with
    one thread each."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        share = str(max(1, (os.cpu_count() or 1) // workers))
        for threads in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
            os.environ.setdefault(threads, share)


share_the_cores()


def only_unit_tests(config: pytest.Config) -> bool:
    """Whether the command line names only paths under tests/unit."""
    unit = REPO / "tests" / "unit"
    paths = [Path(arg.split("::")[0]).resolve() for arg in config.args]
    return bool(paths) and all(path.is_relative_to(unit) for path in paths)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n logical` (make test): one worker more than the machine has cores, unless only unit
    tests run. The slower tiers spend part of their time waiting (servers starting,
    subprocesses, HTTP round trips) and a spare worker fills those gaps: the whole suite on 2
    cores (AMD EPYC, AVX2) was 88 % busy with two workers, 95 % with three. Unit tests never
    wait, and a third worker only adds its start-up (the unit tier: 29 s on two, 38 s on three)."""
    cores = os.cpu_count() or 1
    return cores if only_unit_tests(config) else cores + 1


# Under pytest-xdist the controller starts one Prefect server for all workers and hands them
# its API URL (and its log) in these variables; see `pytest_configure`.
SHARED_PREFECT_API = "FEROPS_TESTS_PREFECT_API_URL"
SHARED_PREFECT_LOG = "FEROPS_TESTS_PREFECT_LOG"
_shared_prefect = pytest.StashKey[tuple[subprocess.Popen, Path]]()


def pytest_configure(config: pytest.Config) -> None:
    """The controller of a parallel run (not unit tests alone) starts one Prefect server, with
    a temporary database, for every worker's `prefect_api`: a server per worker migrated its
    own database (10 to 14 s of CPU each on a 2-core AMD EPYC) and idled through the run. It starts
    in the background while the workers start; the fixture waits for it. Each test that reads
    the server filters by its own flow run, so the workers' runs do not mix."""
    if hasattr(config, "workerinput") or not config.getoption("numprocesses", None):
        return
    if only_unit_tests(config):
        return
    home = Path(tempfile.mkdtemp(prefix="ferops-tests-prefect-"))
    port = free_port()
    log = home / "server.log"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [*command, "--port", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    os.environ[SHARED_PREFECT_API] = f"http://127.0.0.1:{port}/api"
    os.environ[SHARED_PREFECT_LOG] = str(log)
    config.stash[_shared_prefect] = (server, home)


def pytest_unconfigure(config: pytest.Config) -> None:
    shared = config.stash.get(_shared_prefect, None)
    if shared is not None:
        from ferops.kernel.process import stop_group

        server, home = shared
        stop_group(server)
        shutil.rmtree(home, ignore_errors=True)
        for variable in (SHARED_PREFECT_API, SHARED_PREFECT_LOG):
            os.environ.pop(variable, None)


@pytest.fixture(scope="session")
def params(tmp_path_factory) -> Params:
    """The project's real params.yaml shrunk by TINY (tests/helpers.py), read as a stage reads
    it."""
    return load_params(tiny_params_file(tmp_path_factory.mktemp("params")))


@pytest.fixture(scope="session")
def tiny_faceset(params: Params) -> FaceSet:
    """A small, valid synthetic face set (84 / 28 / 28 faces)."""
    return synthetic_faceset(params.data, seed=params.seed)


@pytest.fixture(scope="session")
def prefect_api() -> str:
    """One real Prefect server (temporary database) for the whole run, which flows in this
    process report to; yields its API URL. Under pytest-xdist, the controller's (shared by
    the workers); in a serial run, Prefect's test harness."""
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    shared = os.environ.get(SHARED_PREFECT_API)
    if shared is None:
        with prefect_test_harness(server_startup_timeout=120):
            yield PREFECT_API_URL.value()
        return
    wait_until_healthy(shared, Path(os.environ[SHARED_PREFECT_LOG]))
    with temporary_settings({PREFECT_API_URL: shared}):
        yield shared


def wait_until_healthy(api: str, log: Path, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:  # not listening yet (urllib's URLError is an OSError)
            pass
        time.sleep(0.5)
    raise AssertionError(f"the shared Prefect server at {api} never answered:\n{log.read_text()}")


@pytest.fixture(scope="session")
def keras_model_file(tmp_path_factory, tiny_faceset) -> Path:
    """A small attention CNN (augmentation and dropout included, as trained models have them)
    after one epoch on the tiny faces, saved as .keras."""
    from ferops.kernel.config import TrainConfig
    from ferops.kernel.model_spec import ModelSpec
    from ferops.models.builders import build_model
    from ferops.training.fit import fit, seed_everything

    seed_everything(0)
    model = build_model(ModelSpec(attention="cbam", width=8, depth=2, layer_augment=0.5))
    fit(model, tiny_faceset, TrainConfig(batch_size=32), epochs=1, callbacks=[])
    path = tmp_path_factory.mktemp("model") / "model.keras"
    model.save(path)
    return path


# Slowest first: under pytest-xdist, the files with one long test (README walk-through, the
# learning test) start early, and the many short files fill in behind them, so the workers
# finish together (`make test` passes --no-loadscope-reorder to keep this order).
TIERS = ("e2e", "model", "integration", "unit")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`-m unit`, `-m "not e2e"` … select by folder: the tier is where a test lives. Tiers
    run in TIERS' order, each file's tests in file order."""
    rank = {tier: position for position, tier in enumerate(TIERS)}
    position = {}
    for item in items:
        tier = Path(item.fspath).relative_to(REPO / "tests").parts[0]
        if tier in rank:
            item.add_marker(getattr(pytest.mark, tier))
        position[item.nodeid] = rank.get(tier, len(TIERS))
    items.sort(key=lambda item: position[item.nodeid])  # stable: file order kept
