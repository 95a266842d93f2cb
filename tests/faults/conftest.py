"""Fixtures of the fault suite, and the table of outcomes it prints at the end of the run."""
import pytest

from faults import outcomes
from integration.fixtures import client, cluster, reference_model, serving, shared  # noqa: F401
from integration.support import local_players, run_cli
from privatemodel.runtime.local.cluster import LocalServing


@pytest.fixture
def faults(request):
    """Records what this case tried and how it ended, for the table."""
    return outcomes.FaultLog(request.node.originalname)


@pytest.fixture
def serving_cluster(tmp_path_factory, reference_model):
    """(players, serving) of their own, the reference model shared and served, for a case that breaks them."""
    with local_players(tmp_path_factory.mktemp("breakable")) as players:
        result = run_cli("share", "--model", str(reference_model["path"]), "--config", str(players.hostmap_path))
        assert result.returncode == 0, result.stderr
        serving = LocalServing(players)
        serving.start()
        try:
            yield players, serving
        finally:
            serving.stop()


def pytest_terminal_summary(terminalreporter):
    if not outcomes.RECORDED:
        return
    terminalreporter.write_sep("=", "fault suite: what each bad input or fault came to")
    for line in outcomes.table() + outcomes.NOTES:
        terminalreporter.write_line(line)
