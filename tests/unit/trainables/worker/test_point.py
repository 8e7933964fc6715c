import pytest

from trainables.core.config import TrialSpec
from trainables.methods import METHODS
from trainables.methods.revisions import with_revisions
from trainables.worker.point import point_trials


def base(seed: int) -> dict:
    return with_revisions(TrialSpec(backbone="scratch-gin", method="bss", task="bbbp", split="scaffold",
                                    label_setting="full", seed=seed, subset_seed=42,
                                    method_params={"d_head": 0.0})).to_dict()


def test_a_point_is_merged_into_every_seed_and_typed():
    trials = point_trials([base(0), base(1)], {"d": 1, "k": 2})
    assert [t.seed for t in trials] == [0, 1]
    assert all(t.method_params == {"d": 1.0, "d_head": 0.0, "k": 2, "grad_clip": 10.0, "double_forward": False}
               for t in trials)
    # the key is the grid trial's key: a sampled point equal to a grid point reuses its row
    grid_trial = TrialSpec.from_dict({**base(0), "method_params": METHODS.get("bss").validate_params(
        {"d": 1.0, "d_head": 0.0, "k": 2})})
    assert trials[0].key() == TrialSpec.from_dict(grid_trial.to_dict()).key()


def test_a_point_outside_the_method_is_refused():
    with pytest.raises(ValueError, match="bss.k=1.5"):
        point_trials([base(0)], {"k": 1.5})
