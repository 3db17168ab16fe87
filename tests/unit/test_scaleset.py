"""Parsing a RunnerScaleSet: defaults, and errors naming the field a user must fix."""

from __future__ import annotations

import copy

import pytest

from provisioner.kube.scaleset import ScaleSet, ScaleSetSpecError, with_condition

OBJECT = {
    "apiVersion": "provisioner.dev/v1alpha1",
    "kind": "RunnerScaleSet",
    "metadata": {"name": "ci", "namespace": "runners", "uid": "u-1", "generation": 3},
    "spec": {
        "githubConfigUrl": "https://github.com/acme/app",
        "githubConfigSecret": "github-credentials",
        "template": {"spec": {"containers": [{"name": "runner", "image": "runner:1"}]}},
    },
}


def parse(**spec_changes: object) -> ScaleSet:
    obj = copy.deepcopy(OBJECT)
    obj["spec"].update(spec_changes)
    return ScaleSet.from_object(obj)


def error_of(obj: dict) -> ScaleSetSpecError:
    with pytest.raises(ScaleSetSpecError) as raised:
        ScaleSet.from_object(obj)
    return raised.value


def spec_error(**spec_changes: object) -> ScaleSetSpecError:
    obj = copy.deepcopy(OBJECT)
    obj["spec"].update(spec_changes)
    return error_of(obj)


def test_defaults_of_a_minimal_spec():
    scale_set = parse()
    assert scale_set.key == "runners/ci"
    assert (scale_set.uid, scale_set.generation) == ("u-1", 3)
    assert scale_set.runner_name_prefix == "ci"
    assert (scale_set.min_runners, scale_set.max_runners, scale_set.replicas) == (0, None, 0)
    assert scale_set.runner_group_id == 1
    assert scale_set.labels == ("ci",)  # GitHub needs one label; the name is the natural one


def test_given_values_are_kept():
    scale_set = parse(
        labels=["self-hosted", "gpu"],
        minRunners=1,
        maxRunners=20,
        replicas=5,
        runnerGroupId=4,
        runnerNamePrefix="gpu-ci",
    )
    assert scale_set.labels == ("self-hosted", "gpu")
    assert (scale_set.min_runners, scale_set.max_runners, scale_set.replicas) == (1, 20, 5)
    assert (scale_set.runner_group_id, scale_set.runner_name_prefix) == (4, "gpu-ci")


def test_the_template_is_a_copy():
    obj = copy.deepcopy(OBJECT)
    scale_set = ScaleSet.from_object(obj)
    obj["spec"]["template"]["spec"]["containers"][0]["image"] = "changed"
    assert scale_set.template["spec"]["containers"][0]["image"] == "runner:1"


@pytest.mark.parametrize(
    ("changes", "field", "hint"),
    [
        ({"githubConfigUrl": "https://github.com/a/b/c"}, "spec.githubConfigUrl", "names no"),
        ({"githubConfigUrl": "github.com/acme"}, "spec.githubConfigUrl", "http"),
        ({"githubConfigSecret": ""}, "spec.githubConfigSecret", "required"),
        ({"template": None}, "spec.template", "required"),
        ({"template": {"metadata": {}}}, "spec.template.spec", "required"),
        ({"template": {"spec": {"containers": []}}}, "spec.template.spec.containers", "at least"),
        (
            {"template": {"spec": {"containers": [{"name": "runner"}]}}},
            "spec.template.spec.containers[0].image",
            "required",
        ),
        (
            {"template": {"spec": {"containers": [{"name": "a", "image": "x"}] * 2}}},
            "spec.template.spec.containers",
            "unique",
        ),
        (
            {
                "template": {
                    "metadata": {"labels": {"team": 7}},
                    "spec": {"containers": [{"name": "a", "image": "x"}]},
                }
            },
            "spec.template.metadata.labels",
            "string",
        ),
        ({"minRunners": 5, "maxRunners": 2}, "spec.maxRunners", "at least 5"),
        ({"replicas": -1}, "spec.replicas", "at least 0"),
        ({"replicas": "3"}, "spec.replicas", "integer"),
        ({"labels": ["ok", ""]}, "spec.labels", "non-empty"),
        ({"runnerNamePrefix": "Bad_Prefix"}, "spec.runnerNamePrefix", "lowercase"),
        ({"runnerNamePrefix": "x" * 58}, "spec.runnerNamePrefix", "at most 57"),
    ],
)
def test_a_bad_spec_names_the_field(changes, field, hint):
    error = spec_error(**changes)
    assert error.field == field
    assert str(error).startswith(f"{field}: ")
    assert hint in str(error)


def test_a_long_name_without_a_prefix_points_at_the_prefix():
    obj = copy.deepcopy(OBJECT)
    obj["metadata"]["name"] = "n" * 60
    error = error_of(obj)
    assert error.field == "metadata.name"
    assert "spec.runnerNamePrefix" in str(error)


def test_a_missing_spec_is_an_error():
    assert error_of({"metadata": {"name": "ci"}}).field == "spec"


NOW, LATER = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"


def test_with_condition_adds_and_keeps_the_transition_time_while_the_status_holds():
    conditions = with_condition([], "Ready", "False", "Converging", "0/3", NOW)
    assert conditions == [
        {
            "type": "Ready",
            "status": "False",
            "reason": "Converging",
            "message": "0/3",
            "lastTransitionTime": NOW,
        }
    ]
    same = with_condition(conditions, "Ready", "False", "Converging", "2/3", LATER)
    assert (same[0]["message"], same[0]["lastTransitionTime"]) == ("2/3", NOW)
    flipped = with_condition(same, "Ready", "True", "AtDesiredSize", "3/3", LATER)
    assert (flipped[0]["status"], flipped[0]["lastTransitionTime"]) == ("True", LATER)
    assert conditions[0]["message"] == "0/3"  # the input is not changed


def test_with_condition_leaves_other_types_in_place():
    conditions = with_condition([], "Ready", "True", "AtDesiredSize", "3/3", NOW)
    conditions = with_condition(conditions, "Throttled", "False", "NotThrottled", "-", NOW)
    conditions = with_condition(conditions, "Ready", "False", "Converging", "2/3", LATER)
    assert [(c["type"], c["status"]) for c in conditions] == [
        ("Ready", "False"),
        ("Throttled", "False"),
    ]
