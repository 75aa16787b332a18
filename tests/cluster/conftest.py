"""Fixtures of the cluster suite: preflight, leftover cleanup, a fresh cluster per test.

On a failed test the report gets a "cluster" section (nodes, active nemeses,
the tail of every node log) and the run folder is kept; its path is printed.
"""
import os
import signal
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def _sigterm(signum, frame):
    # ctest and CI runners stop with SIGTERM: unwind like Ctrl-C so fixtures clean up.
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session", autouse=True)
def cluster_session():
    """Fails every test with a clear message when the machine cannot run the
    suite (never skips), and removes leftovers of crashed runs first."""
    problem = harness.preflight()
    if problem:
        pytest.fail(f"cluster suite cannot run: {problem}", pytrace=False)
    signal.signal(signal.SIGTERM, _sigterm)
    out = harness.cleanup_leftovers()
    if out.strip():
        sys.stderr.write(out)
    yield
    for cluster in list(harness.Cluster.live):
        cluster.close(keep=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
    cluster = getattr(item, "funcargs", {}).get("cluster")
    if rep.failed and isinstance(cluster, harness.Cluster) and not cluster.closed:
        rep.sections.append(("cluster", cluster.report()))


@pytest.fixture
def cluster(request):
    """A fresh, empty cluster network (no nodes yet); removed after the test,
    its run folder kept when the test failed."""
    c = harness.Cluster()
    try:
        yield c
    finally:
        rep = getattr(request.node, "rep_call", None)
        failed = rep is None or rep.failed
        c.close(keep=failed)
