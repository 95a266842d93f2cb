"""Readings of live children: player readiness and UIDs, how a sharing Job ended, serving readiness."""
from privatemodel.controller.observe import (
    JobOutcome,
    is_deployment_ready,
    job_failure_message,
    job_outcome,
    missing_sources,
    owned_by,
    players_from_pods,
    waiting_reasons,
)


def pod(name, uid, ready=True, deleting=False, created="2026-01-01T00:00:00Z", terminated=None):
    meta = {"name": name, "uid": uid, "creationTimestamp": created}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:01:00Z"
    status = {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if terminated:
        status["containerStatuses"] = [{"state": {"terminated": terminated}}]
    return {"metadata": meta, "status": status}


def test_players_are_in_player_order_whatever_the_list_order():
    players = players_from_pods("mnist", [pod("mnist-server2-0", "c"), pod("mnist-server0-0", "a"), pod("mnist-server1-0", "b")])
    assert players.uids == ["a", "b", "c"]
    assert players.all_ready and players.summary == "3/3"


def test_a_missing_or_terminating_player_means_no_uids_and_not_ready():
    players = players_from_pods("mnist", [pod("mnist-server0-0", "a"), pod("mnist-server1-0", "b", deleting=True),
                                          pod("mnist-server2-0", "c")])
    assert players.uids is None
    assert not players.all_ready and players.summary == "2/3"


def test_unready_players_still_have_uids_their_shares_survive_container_restarts():
    players = players_from_pods("mnist", [pod(f"mnist-server{i}-0", str(i), ready=i != 1) for i in range(3)])
    assert players.uids == ["0", "1", "2"]
    assert players.summary == "2/3"


def test_pods_of_another_model_or_a_second_ordinal_are_not_players():
    players = players_from_pods("mnist", [pod("mnist-server0-0", "a"), pod("mnist-x-server1-0", "b"),
                                          pod("mnist-server2-1", "c")])
    assert players.pods[1] is None and players.pods[2] is None


def job(*conditions):
    return {"status": {"conditions": [{"type": t, "status": s, "message": m} for t, s, m in conditions]}}


def test_job_outcomes():
    assert job_outcome({}) == JobOutcome.RUNNING
    assert job_outcome(job(("Complete", "True", ""))) == JobOutcome.SUCCEEDED
    assert job_outcome(job(("Failed", "True", "BackoffLimitExceeded"))) == JobOutcome.FAILED
    assert job_outcome(job(("Failed", "False", ""))) == JobOutcome.RUNNING


def test_failure_message_is_the_newest_pods_termination_message():
    pods = [
        pod("j-1", "1", created="2026-01-01T00:00:00Z", terminated={"exitCode": 2, "message": "old reason"}),
        pod("j-2", "2", created="2026-01-01T00:05:00Z",
            terminated={"exitCode": 2, "message": "traceback line\nlayer 3 'drop' (Dropout): not supported"}),
    ]
    failed = job(("Failed", "True", "Job has reached the specified backoff limit"))
    assert job_failure_message(failed, pods) == "layer 3 'drop' (Dropout): not supported"


def test_failure_message_falls_back_to_the_jobs_condition():
    failed = job(("Failed", "True", "Job was active longer than specified deadline"))
    assert job_failure_message(failed, []) == "Job was active longer than specified deadline"


def deployment(generation, observed, updated, ready):
    return {"metadata": {"generation": generation},
            "status": {"observedGeneration": observed, "updatedReplicas": updated, "readyReplicas": ready}}


def test_deployment_is_ready_only_when_its_current_template_runs():
    assert is_deployment_ready(deployment(2, 2, 1, 1))
    assert not is_deployment_ready(deployment(2, 1, 1, 1))  # controller has not seen the new template
    assert not is_deployment_ready(deployment(2, 2, 0, 1))  # the ready pod is the old one
    assert not is_deployment_ready(deployment(1, 1, 1, 0))


def test_waiting_reasons_name_the_pod_and_why():
    stuck = pod("job-abc", "1")
    stuck["status"].update(phase="Pending", containerStatuses=[{"state": {"waiting": {"reason": "ContainerCreating"}}}])
    scheduled = pod("job-def", "2")
    scheduled["status"].update(phase="Pending")
    running = pod("job-ghi", "3")
    running["status"].update(phase="Running", containerStatuses=[{"state": {"running": {}}}])
    assert waiting_reasons([stuck, scheduled, running]) == ["job-abc: ContainerCreating", "job-def: Pending"]


def test_owned_by_reads_owner_references_not_labels():
    ours = {"metadata": {"name": "a", "ownerReferences": [{"uid": "model-uid", "kind": "PrivateModel"}]}}
    users = {"metadata": {"name": "b", "labels": {"ml.privatemodel.dev/model": "mnist"}}}
    someone_elses = {"metadata": {"name": "c", "ownerReferences": [{"uid": "other", "kind": "Deployment"}]}}
    assert owned_by([ours, users, someone_elses], "model-uid") == [ours]


def event(reason, message, at="2026-01-01T00:00:00Z"):
    return {"reason": reason, "message": message, "lastTimestamp": at}


def test_missing_sources_name_what_does_not_exist():
    events = [
        event("Scheduled", "Successfully assigned models/mnist-sharing-x to node"),
        event("FailedMount", 'MountVolume.SetUp failed for volume "model" : secret "mnist-model" not found'),
        event("FailedMount", 'MountVolume.SetUp failed for volume "model" : secret "mnist-model" not found',
              "2026-01-01T00:00:09Z"),
        event("FailedMount", 'MountVolume.SetUp failed for volume "architecture" : configmap "arch" not found'),
        event("FailedMount", "Unable to attach or mount volumes: unmounted volumes=[model]: timed out waiting"),
    ]
    assert missing_sources(events) == ['secret "mnist-model" not found', 'configmap "arch" not found']
    key = event("FailedMount", 'MountVolume.SetUp failed for volume "model" : references non-existent secret key: m.h5')
    assert missing_sources([key]) == ["references non-existent secret key: m.h5"]
    claim = event("FailedScheduling", '0/1 nodes are available: 1 persistentvolumeclaim "models" not found.')
    assert missing_sources([claim]) == ['persistentvolumeclaim "models" not found']
    assert missing_sources([event("BackOff", 'secret "x" not found')]) == []
