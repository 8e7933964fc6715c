import pytest

from orchestrator.sweep.fusion import Unit, fusion_key, plan_units
from trainables.core.config import TrainingRecipe, TrialSpec


def trial(method="full-ft", backbone="scratch-gin", task="bbbp", label_setting="fewshot:50", seed=0, epochs=10,
          **params) -> TrialSpec:
    return TrialSpec(backbone=backbone, method=method, task=task, split="scaffold", label_setting=label_setting,
                     seed=seed, subset_seed=seed, recipe=TrainingRecipe(epochs=epochs), method_params=params,
                     num_layers=2, emb_dim=16)


def test_compatible_trials_form_one_group_and_others_run_alone():
    seeds = [trial(seed=s) for s in range(4)] + [trial("l2-sp", d=0.01), trial("bss", d=0.1, k=2)]
    other_task = [trial(task="esol", seed=s) for s in range(2)]
    gat = [trial(backbone="scratch-gat", seed=s) for s in range(2)]  # fuses, in a group of its own architecture
    alone = [trial("lp", freeze_bn_stats=True), trial("bss", double_forward=True), trial(backbone="scratch-gps"),
             trial(label_setting="full"), trial("lp-ft")]  # LP-FT's two stages: a group of its own kind
    units = plan_units(seeds + other_task + gat + alone)
    groups = [u for u in units if u.fused]
    # methods and hyper-parameters that fuse share the group of their task
    assert [[s.key() for s in g.specs] for g in groups] == [[s.key() for s in seeds], [s.key() for s in other_task],
                                                            [s.key() for s in gat]]
    singles = [u.specs[0] for u in units if not u.fused]
    assert sorted(s.key() for s in singles) == sorted(s.key() for s in alone)
    assert fusion_key(trial("lp", freeze_bn_stats=True)) is None and fusion_key(trial(backbone="scratch-gps")) is None
    assert fusion_key(trial("lp")) == fusion_key(trial("surgical-ft", layer=1)) == fusion_key(trial())
    assert fusion_key(trial("lp-ft")) not in (None, fusion_key(trial()), fusion_key(trial("lp-ft", lp_epochs=3)))


def test_scratch_backbones_of_one_architecture_fuse_only_at_equal_shape():
    wide = TrialSpec(backbone="scratch-gin", method="full-ft", task="bbbp", split="scaffold",
                     label_setting="full", seed=0, subset_seed=0, num_layers=2, emb_dim=32)
    assert fusion_key(wide) != fusion_key(trial(label_setting="full"))
    assert fusion_key(trial(epochs=5)) != fusion_key(trial(epochs=10))  # recipes must match


def test_groups_are_balanced_under_the_size_limit():
    trials = [trial(seed=s) for s in range(65)]
    assert sorted(len(u.specs) for u in plan_units(trials, max_size=64)) == [32, 33]
    assert [len(u.specs) for u in plan_units(trials[:5], max_size=2)] == [2, 2, 1]
    assert all(not u.fused for u in plan_units(trials, fuse=False))
    with pytest.raises(ValueError, match="fuse_max=0"):
        plan_units(trials, max_size=0)


def test_unit_configs_name_their_members():
    members = (trial(seed=0), trial(seed=1))
    config = Unit(members).to_config()
    assert config["key"].startswith("fused-") and config["members"] == [m.key() for m in members]
    assert [TrialSpec.from_dict(d).key() for d in config["group"]] == config["members"]
    assert Unit(members).key == Unit(members[::-1]).key  # order-independent
    single = Unit(members[:1]).to_config()
    assert single == {"key": members[0].key(), "spec": members[0].to_dict()}
