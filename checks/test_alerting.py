"""Alerting: no critical alert firing (Prometheus ALERTS or Alertmanager), alert rules loaded and evaluating."""

import pytest

from opsproof.alerting import failing_rules, named, rule_count

pytestmark = [pytest.mark.smoke, pytest.mark.nightly]


@pytest.mark.p1
def test_no_critical_alert_firing_in_prometheus(prometheus_target, prometheus_firing, evidence):
    evidence.record("alert_matchers", prometheus_target.alerts.matchers)
    evidence.expect("alerts_firing", len(prometheus_firing), "<=", prometheus_target.alerts.max,
                    note=named(prometheus_firing))


@pytest.mark.p1
def test_no_critical_alert_active_in_alertmanager(alertmanager_target, alertmanager_firing, evidence):
    evidence.record("alert_matchers", alertmanager_target.alerts.matchers)
    evidence.expect("alerts_active", len(alertmanager_firing), "<=", alertmanager_target.alerts.max,
                    note=named(alertmanager_firing))


@pytest.mark.p1
def test_alert_rules_are_loaded(prometheus_target, rule_groups, evidence):
    evidence.expect("rules_loaded", rule_count(rule_groups), ">=", prometheus_target.rules.min_rules)


@pytest.mark.p1
def test_rule_groups_evaluate_without_errors(prometheus_target, rule_groups, evidence):
    evidence.record("rule_groups", len(rule_groups))
    evidence.expect("failing_rules", failing_rules(rule_groups), "==", {})
