"""The rollout verdicts are kubectl's: its rollout_status_test.go tables, case for case."""

import pytest

from opsproof.kubernetes.rollout import RolloutError, daemonset_status, deployment_status, statefulset_status


def _deployment(generation, spec_replicas, observed, replicas, updated, available):
    return {"metadata": {"name": "foo", "namespace": "bar", "generation": generation},
            "spec": {"replicas": spec_replicas},
            "status": {"observedGeneration": observed, "replicas": replicas, "updatedReplicas": updated,
                       "availableReplicas": available, "unavailableReplicas": replicas - available}}


@pytest.mark.parametrize("obj, message, done", [
    (_deployment(0, 1, 1, 1, 0, 1),
     'Waiting for deployment "foo" rollout to finish: 0 out of 1 new replicas have been updated...', False),
    (_deployment(1, 1, 1, 2, 1, 2),
     'Waiting for deployment "foo" rollout to finish: 1 old replicas are pending termination...', False),
    (_deployment(1, 2, 1, 2, 2, 1),
     'Waiting for deployment "foo" rollout to finish: 1 of 2 updated replicas are available...', False),
    (_deployment(1, 2, 1, 2, 2, 2), 'deployment "foo" successfully rolled out', True),
    (_deployment(2, 2, 1, 2, 2, 2), "Waiting for deployment spec update to be observed...", False),
], ids=["test1", "test2", "test3", "test4", "test5"])
def test_deployment_cases_from_kubectl(obj, message, done):
    assert deployment_status(obj) == (message, done)


def test_deployment_past_its_progress_deadline_is_an_error():
    obj = _deployment(1, 2, 1, 2, 1, 1)
    obj["status"]["conditions"] = [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]
    with pytest.raises(RolloutError, match='deployment "foo" exceeded its progress deadline'):
        deployment_status(obj)


def _daemonset(generation, observed, updated, desired, available, strategy="RollingUpdate"):
    return {"metadata": {"name": "foo", "namespace": "bar", "generation": generation},
            "spec": {"updateStrategy": {"type": strategy}},
            "status": {"observedGeneration": observed, "updatedNumberScheduled": updated,
                       "desiredNumberScheduled": desired, "numberAvailable": available}}


@pytest.mark.parametrize("obj, message, done", [
    (_daemonset(0, 1, 0, 1, 0),
     'Waiting for daemon set "foo" rollout to finish: 0 out of 1 new pods have been updated...', False),
    (_daemonset(1, 1, 2, 2, 1), 'Waiting for daemon set "foo" rollout to finish: 1 of 2 updated pods are available...',
     False),
    (_daemonset(1, 1, 2, 2, 2), 'daemon set "foo" successfully rolled out', True),
    (_daemonset(2, 1, 2, 2, 2), "Waiting for daemon set spec update to be observed...", False),
], ids=["test1", "test2", "test3", "test4"])
def test_daemonset_cases_from_kubectl(obj, message, done):
    assert daemonset_status(obj) == (message, done)


def test_daemonset_with_on_delete_strategy_is_an_error():
    with pytest.raises(RolloutError, match="^rollout status is only available for RollingUpdate strategy type$"):
        daemonset_status(_daemonset(0, 0, 0, 0, 0, strategy="OnDelete"))


def _statefulset(generation, strategy, observed, replicas, ready, current, updated, current_rev="", update_rev=""):
    return {"metadata": {"name": "foo", "namespace": "default", "generation": generation},
            "spec": {"replicas": 3, "updateStrategy": strategy},
            "status": {"observedGeneration": observed, "replicas": replicas, "readyReplicas": ready,
                       "currentReplicas": current, "updatedReplicas": updated, "currentRevision": current_rev,
                       "updateRevision": update_rev}}


ROLLING = {"type": "RollingUpdate"}
PARTITIONED = {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}


@pytest.mark.parametrize("obj, message, done", [
    (_statefulset(2, ROLLING, 1, 3, 3, 3, 0), "Waiting for statefulset spec update to be observed...", False),
    (_statefulset(1, ROLLING, 2, 3, 2, 3, 0), "Waiting for 1 pods to be ready...", False),
    (_statefulset(1, PARTITIONED, 2, 3, 3, 2, 1), "partitioned roll out complete: 1 new pods have been updated...",
     True),
    # kubectl's table says done=true but asserts only that done is not wrongly true; its code returns false
    (_statefulset(1, PARTITIONED, 2, 3, 3, 3, 0),
     "Waiting for partitioned roll out to finish: 0 out of 1 new pods have been updated...", False),
    (_statefulset(1, ROLLING, 2, 3, 3, 3, 3, "foo", "foo"),
     "statefulset rolling update complete 3 pods at revision foo...", True),
], ids=["unobserved update is not complete", "if all pods are not ready the update is not complete",
        "partition update completes when all replicas above the partition are updated",
        "partition update is in progress if all pods above the partition have not been updated",
        "update completes when all replicas are current"])
def test_statefulset_cases_from_kubectl(obj, message, done):
    assert statefulset_status(obj) == (message, done)


def test_statefulset_on_delete_returns_an_error():
    with pytest.raises(RolloutError):
        statefulset_status(_statefulset(1, {"type": "OnDelete"}, 1, 0, 1, 0, 0))


def test_statefulset_rolling_update_in_progress_waits_for_the_update_revision():
    obj = _statefulset(1, ROLLING, 1, 3, 3, 2, 1, "rev-a", "rev-b")
    assert statefulset_status(obj) == ("waiting for statefulset rolling update to complete 1 pods at revision rev-b...",
                                       False)
