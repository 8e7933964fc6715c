import numpy as np
import pytest
import torch

from tests.unit.trainables.training.fused.conftest import DEVICES
from trainables.core.config import TrainingRecipe
from trainables.core.engine import EngineOptions
from trainables.data.tasks import TaskType
from trainables.methods import MethodContext, make_method
from trainables.models.gnn import GNNShape
from trainables.models.predictor import GraphPredictor
from trainables.training.fused.engine import FusedMember, dropout_generator_after_init, fit_fused
from trainables.training.fused.model import FUSABLE_GNN_TYPES, FusionError, StackedPredictors
from trainables.training.trainer import DivergedError, SplitIndices, fit

AGGREGATIONS = EngineOptions.choices("aggregation")
SEEDS = (0, 1, 2)
RECIPE = TrainingRecipe(epochs=3, batch_size=16)


def split_for(seed: int, n_train: int = 40) -> SplitIndices:
    """Each trial its own label subset of equal size; shared validation and test molecules."""
    train = np.random.default_rng(seed).permutation(80)[:n_train]
    return SplitIndices(torch.from_numpy(train), torch.arange(80, 100), torch.arange(100, 120))


def build(seed: int, gnn_type: str, dropout: float, device, dtype=torch.float64) -> GraphPredictor:
    torch.manual_seed(seed)  # as a trial: seed, then build (the head's init draws from the RNG)
    return GraphPredictor(GNNShape(gnn_type, 2, 8, dropout), 1).to(dtype).to(device)


def unfused_run(data, seed, gnn_type, dropout, device, recipe=RECIPE, method=("full-ft", {})):
    ctx = MethodContext(model=build(seed, gnn_type, dropout, device), pretrained_state=None, seed=seed)
    return fit(ctx, make_method(*method), data, split_for(seed), TaskType.CLASSIFICATION, True, recipe,
               torch.Generator().manual_seed(seed), torch.device(device))


def fused_run(data, seeds, gnn_type, dropout, device, method=("full-ft", {}), splits=None, recipe=RECIPE,
              methods=None, dtype=torch.float64, **options):
    members = []
    for i, seed in enumerate(seeds):
        model = build(seed, gnn_type, dropout, device, dtype)
        members.append(FusedMember(model, make_method(*(method if methods is None else methods[i])),
                                   split_for(seed) if splits is None else splits[i],
                                   torch.Generator().manual_seed(seed),
                                   dropout_generator_after_init(torch.device(device), seed), seed))
    draws = options.pop("dropout_draws", None)
    if "compile_normalisation" in options:
        options["compile"] = options.pop("compile_normalisation")
    return fit_fused(members, data, TaskType.CLASSIFICATION, True, recipe, torch.device(device),
                     options=EngineOptions(**options), dropout_draws=draws)


def assert_same_run(a, b):
    assert [(e.stage, e.epoch) for e in a.history] == [(e.stage, e.epoch) for e in b.history]
    np.testing.assert_allclose([e.train_loss for e in a.history], [e.train_loss for e in b.history], rtol=1e-9)
    np.testing.assert_allclose([e.val for e in a.history], [e.val for e in b.history], rtol=1e-9)
    np.testing.assert_allclose([e.test for e in a.history], [e.test for e in b.history], rtol=1e-9)
    assert (a.best_epoch, a.best_stage) == (b.best_epoch, b.best_stage)
    assert list(a.best_state) == list(b.best_state)
    for name in a.best_state:
        torch.testing.assert_close(a.best_state[name].cpu(), b.best_state[name].cpu(), rtol=1e-7, atol=1e-8)


# On the CPU a fused trial draws exactly its unfused run's dropout masks; a GPU's unfused
# dropout uses another kernel, so there the comparison runs without dropout.
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("gnn_type, aggregation", [(g, a) for g in FUSABLE_GNN_TYPES for a in AGGREGATIONS
                                                   if g != "gat" or a == "scatter"])
def test_fused_trials_equal_their_unfused_runs(molecules, gnn_type, device, aggregation):
    """Float64, so that Adam's normalisation cannot blow rounding noise up (see the README);
    messages summed by scatter or by CSR products (GAT: scatter only, its weights are attention)."""
    dropout = 0.5 if device == "cpu" else 0.0
    fused = fused_run(molecules, SEEDS, gnn_type, dropout, device, aggregation=aggregation)
    for seed, result in zip(SEEDS, fused):
        assert_same_run(unfused_run(molecules, seed, gnn_type, dropout, device), result)


def test_a_trial_does_not_depend_on_its_group(molecules):
    alone = fused_run(molecules, [1], "gin", 0.5, "cpu")[0]
    grouped = fused_run(molecules, [4, 1, 7], "gin", 0.5, "cpu")[1]
    assert_same_run(alone, grouped)


# Methods and hyper-parameters mix in one group; every member still equals its unfused run.
MIXED = [("full-ft", {}), ("l2-sp", {"d": 0.1}), ("l2-sp", {"d": 0.5, "l2sp_scope": "all", "grad_clip": 0.05}),
         ("feature-map", {"d": 0.01}), ("bss", {"d": 0.1, "k": 2}), ("bss", {"d": 0.0, "d_head": 0.3}),
         ("feature-map", {"d": 0.0, "d_head": 0.0})]


# GIN + L2-SP is left out of the exact comparison, for a reason outside fusion: GIN's second MLP
# bias feeds BatchNorm, so its task gradient is zero in exact arithmetic; L2-SP adds d (w - w_pre)
# and Adam, normalising that tiny gradient, flips the bias around w_pre by steps of lr in a
# direction set by float64 rounding, so any change of summation order (fusion, thread count)
# takes another path, which BatchNorm's running mean (hence evaluation) feels. Its first epoch
# still agrees (test below); GCN and GraphSAGE + L2-SP agree throughout.
@pytest.mark.parametrize("gnn_type", ["gin", "gcn", "graphsage"])
def test_a_mixed_group_of_methods_equals_each_unfused_run(molecules, gnn_type):
    methods = [m for m in MIXED if not (gnn_type == "gin" and m[0] == "l2-sp")]
    seeds = list(range(len(methods)))
    fused = fused_run(molecules, seeds, gnn_type, 0.5, "cpu", methods=methods)
    for seed, method, result in zip(seeds, methods, fused):
        assert_same_run(unfused_run(molecules, seed, gnn_type, 0.5, "cpu", method=method), result)


def test_gin_l2sp_agrees_for_its_first_epoch(molecules):
    recipe = TrainingRecipe(epochs=1, batch_size=16)
    methods = [m for m in MIXED if m[0] == "l2-sp"]
    fused = fused_run(molecules, [0, 1], "gin", 0.5, "cpu", methods=methods, recipe=recipe)
    for seed, method, result in zip([0, 1], methods, fused):
        unfused = unfused_run(molecules, seed, "gin", 0.5, "cpu", method=method, recipe=recipe)
        assert result.history[0].train_loss == pytest.approx(unfused.history[0].train_loss, rel=1e-12)
        assert (result.history[0].val, result.history[0].test) == (unfused.history[0].val, unfused.history[0].test)


# Partial methods fuse: each member trains what its method selects (a zero gradient elsewhere); frozen
# layers stay in train mode as unfused (BatchNorm statistics move, dropout on).
PARTIAL = [("full-ft", {}), ("lp", {}), ("surgical-ft", {"layer": 0}), ("surgical-ft", {"layer": 1}),
           ("surgical-ft", {"layer": 1, "train_batch_norm": True}), ("bss", {"d": 0.1}),
           ("feature-map", {"d": 0.01, "features": "output"})]


@pytest.mark.parametrize("gnn_type", ["gin", "gcn"])
def test_partial_methods_in_a_group_equal_their_unfused_runs(molecules, gnn_type):
    seeds = list(range(len(PARTIAL)))
    fused = fused_run(molecules, seeds, gnn_type, 0.5, "cpu", methods=PARTIAL)
    for seed, method, result in zip(seeds, PARTIAL, fused):
        assert_same_run(unfused_run(molecules, seed, gnn_type, 0.5, "cpu", method=method), result)


def test_frozen_slices_stay_put_under_weight_decay(molecules):
    """Weight decay would move a frozen slice through Adam; the engine puts it back after each step."""
    recipe = TrainingRecipe(epochs=2, batch_size=16, weight_decay=0.01)
    methods = [("lp", {}), ("full-ft", {}), ("surgical-ft", {"layer": 1})]
    fused = fused_run(molecules, [0, 1, 2], "gcn", 0.5, "cpu", methods=methods, recipe=recipe)
    for seed, method, result in zip([0, 1, 2], methods, fused):
        assert_same_run(unfused_run(molecules, seed, "gcn", 0.5, "cpu", method=method, recipe=recipe), result)
    initial = build(0, "gcn", 0.5, "cpu").state_dict()
    assert all(torch.equal(fused[0].best_state[k], initial[k]) for k in initial if k.startswith("gnn.")
               and not k.endswith(("running_mean", "running_var", "num_batches_tracked")))


@pytest.mark.parametrize("gnn_type", ["gin", "gcn"])
def test_lp_ft_members_fuse_stage_by_stage(molecules, gnn_type):
    """LP-FT's two stages in one group: a fresh Adam per stage, the LP stage unreportable, and the FT stage
    starting from the best-validation LP head (copy_best_head) or the last one, as unfused."""
    methods = [("lp-ft", {"lp_epochs": 2, "ft_epochs": 2}), ("lp-ft", {"lp_epochs": 2, "ft_epochs": 2}),
               ("lp-ft", {"lp_epochs": 2, "ft_epochs": 2, "copy_best_head": False})]
    fused = fused_run(molecules, [0, 1, 2], gnn_type, 0.5, "cpu", methods=methods)
    for seed, method, result in zip([0, 1, 2], methods, fused):
        unfused = unfused_run(molecules, seed, gnn_type, 0.5, "cpu", method=method)
        assert [e.stage for e in unfused.history] == ["lp", "lp", "ft", "ft"]
        assert_same_run(unfused, result)
        assert result.best_stage == "ft"


def test_members_that_cannot_share_a_group_are_refused(molecules):
    with pytest.raises(FusionError, match=r"lp\[freeze_bn_stats=True\] does not fuse"):
        fused_run(molecules, [0, 1], "gin", 0.5, "cpu", method=("lp", {"freeze_bn_stats": True}))
    with pytest.raises(FusionError, match="double_forward=True.* does not fuse"):
        fused_run(molecules, [0, 1], "gin", 0.5, "cpu", method=("bss", {"double_forward": True}))
    with pytest.raises(FusionError, match="must share their stages"):
        fused_run(molecules, [0, 1], "gin", 0.5, "cpu", methods=[("full-ft", {}), ("lp-ft", {"lp_epochs": 1,
                                                                                                "ft_epochs": 2})])
    other_valid = SplitIndices(torch.arange(40), torch.arange(80, 99), torch.arange(100, 120))
    with pytest.raises(FusionError, match="validation and test"):
        fused_run(molecules, [0, 1], "gin", 0.5, "cpu", splits=[split_for(0), other_valid])
    with pytest.raises(FusionError, match="equally many"):
        fused_run(molecules, [0, 1], "gin", 0.5, "cpu", splits=[split_for(0), split_for(1, n_train=30)])


def test_a_diverging_member_fails_alone(molecules):
    """A member with a NaN weight diverges; its NaNs stay in its slices, the others are unchanged."""
    members = []
    for seed in (0, 1, 2):
        model = build(seed, "gcn", 0.5, "cpu")
        if seed == 1:
            with torch.no_grad():
                model.graph_pred_linear.weight[0, 0] = float("nan")
        members.append(FusedMember(model, make_method("full-ft"), split_for(seed), torch.Generator().manual_seed(seed),
                                   dropout_generator_after_init(torch.device("cpu"), seed), seed))
    results = fit_fused(members, molecules, TaskType.CLASSIFICATION, True, RECIPE, torch.device("cpu"))
    assert isinstance(results[1], DivergedError) and "diverged at epoch 1" in str(results[1])
    for seed in (0, 2):
        assert_same_run(unfused_run(molecules, seed, "gcn", 0.5, "cpu"), results[seed])


def test_an_unfused_trial_that_diverges_raises(molecules):
    model = build(0, "gcn", 0.5, "cpu")
    with torch.no_grad():
        model.graph_pred_linear.bias.fill_(float("inf"))
    ctx = MethodContext(model=model, pretrained_state=None, seed=0)
    with pytest.raises(DivergedError, match="diverged at epoch 1"):
        fit(ctx, make_method("full-ft"), molecules, split_for(0), TaskType.CLASSIFICATION, True, RECIPE,
            torch.Generator().manual_seed(0), torch.device("cpu"))


def test_per_step_draws_keep_a_trial_independent_of_its_group(molecules):
    """Per-trial streams drawn once per step (every layer's masks at once; the default on an
    accelerator): deterministic, and a trial's run does not depend on its group. (Whether the
    masks equal the per-layer ones depends on the generator's kernel: a CPU kernel that draws
    element by element gives the same numbers, CUDA's Philox kernel does not.)"""
    alone = fused_run(molecules, [1], "gin", 0.5, "cpu", dropout_draws="per-step")[0]
    grouped = fused_run(molecules, [4, 1, 7], "gin", 0.5, "cpu", dropout_draws="per-step")[1]
    assert_same_run(alone, grouped)
    assert_same_run(alone, fused_run(molecules, [1], "gin", 0.5, "cpu", dropout_draws="per-step")[0])
    assert np.isfinite([e.train_loss for e in alone.history]).all()
    with pytest.raises(FusionError, match="dropout_draws 'per-epoch'; accepted: per-layer, per-step"):
        fused_run(molecules, [0], "gin", 0.5, "cpu", dropout_draws="per-epoch")


def test_group_dropout_is_deterministic_and_differs_from_per_trial_streams(molecules):
    """One dropout generator per group: the same group gives the same run; the masks are not the
    per-trial ones (so the losses differ from the unfused runs'), and every member still trains."""
    first = fused_run(molecules, [0, 1, 2], "gin", 0.5, "cpu", dropout_streams="group")
    again = fused_run(molecules, [0, 1, 2], "gin", 0.5, "cpu", dropout_streams="group")
    per_trial = fused_run(molecules, [0, 1, 2], "gin", 0.5, "cpu")
    for a, b, c in zip(first, again, per_trial):
        assert_same_run(a, b)
        assert [e.train_loss for e in a.history] != [e.train_loss for e in c.history]
        assert np.isfinite([e.train_loss for e in a.history]).all()
    # without dropout the streams do not matter
    plain = fused_run(molecules, [0, 1], "gcn", 0.0, "cpu", dropout_streams="group")
    for seed, result in zip([0, 1], plain):
        assert_same_run(unfused_run(molecules, seed, "gcn", 0.0, "cpu"), result)


def test_bf16_autocast_trains_close_to_float32(molecules):
    """bfloat16 autocast (which narrows float32 models): losses within a few percent of float32's
    in the first epoch."""
    full = fused_run(molecules, [0, 1], "gin", 0.0, "cpu", dtype=torch.float32)
    narrow = fused_run(molecules, [0, 1], "gin", 0.0, "cpu", dtype=torch.float32, precision="bf16")
    for a, b in zip(full, narrow):
        assert np.isfinite([e.train_loss for e in b.history]).all()
        np.testing.assert_allclose(b.history[0].train_loss, a.history[0].train_loss, rtol=0.05)
        assert b.history[0].train_loss != a.history[0].train_loss  # it did run in bfloat16


def test_unknown_speed_options_are_refused(molecules):
    with pytest.raises(ValueError, match="dropout_streams='shared' is not accepted; accepted: per-trial, group"):
        fused_run(molecules, [0], "gin", 0.5, "cpu", dropout_streams="shared")
    with pytest.raises(ValueError, match="precision='fp16' is not accepted; accepted: fp32, bf16"):
        fused_run(molecules, [0], "gin", 0.5, "cpu", precision="fp16")


def test_csr_aggregation_with_bf16_and_bad_names(molecules):
    narrow = fused_run(molecules, [0, 1], "gcn", 0.0, "cpu", dtype=torch.float32, precision="bf16",
                       aggregation="csr")
    full = fused_run(molecules, [0, 1], "gcn", 0.0, "cpu", dtype=torch.float32)
    for a, b in zip(full, narrow):
        np.testing.assert_allclose(b.history[0].train_loss, a.history[0].train_loss, rtol=0.05)
    with pytest.raises(ValueError, match="aggregation='coo' is not accepted; accepted: scatter, csr"):
        fused_run(molecules, [0], "gin", 0.0, "cpu", aggregation="coo")
    with pytest.raises(FusionError, match="aggregation 'coo'; accepted: scatter, csr"):
        StackedPredictors([build(0, "gin", 0.0, "cpu", torch.float64)], aggregation="coo")


@pytest.mark.slow
def test_compiled_normalisation_equals_eager(molecules):
    """``torch.compile`` of BatchNorm + ReLU + dropout (one kernel chain) trains as the eager ops do:
    float64, dropout on, per-trial streams (the masks are drawn outside the compiled region)."""
    eager = fused_run(molecules, [0, 1, 2], "gin", 0.5, "cpu")
    compiled = fused_run(molecules, [0, 1, 2], "gin", 0.5, "cpu", compile_normalisation=True)
    for a, b in zip(eager, compiled):
        assert_same_run(a, b)


def test_lazy_test_scoring_reports_the_same_results_and_skips_only_unreportable_epochs(molecules):
    """``test_scoring: improved`` scores test where some member's validation improved (stage or trial)
    and at each stage's last epoch: the results equal scoring every epoch; the curves differ only in
    the test figures of the other epochs, which are NaN."""
    recipe = TrainingRecipe(epochs=8, batch_size=16)
    methods = [("lp-ft", {"lp_epochs": 4, "ft_epochs": 4})] * 3
    every = fused_run(molecules, SEEDS, "gin", 0.5, "cpu", methods=methods, recipe=recipe)
    lazy = fused_run(molecules, SEEDS, "gin", 0.5, "cpu", methods=methods, recipe=recipe, test_scoring="improved")
    skipped = 0
    for a, b in zip(every, lazy):
        assert (a.best_epoch, a.best_stage, a.val, a.test) == (b.best_epoch, b.best_stage, b.val, b.test)
        assert [(e.stage, e.epoch, e.train_loss, e.val) for e in a.history] == [
            (e.stage, e.epoch, e.train_loss, e.val) for e in b.history]
        for x, y in zip(a.history, b.history):
            assert y.test == x.test or np.isnan(y.test)
        assert not np.isnan(b.history[3].test) and not np.isnan(b.history[-1].test)  # each stage's last epoch
        skipped += sum(np.isnan(e.test) for e in b.history)
    assert skipped > 0  # validation stopped improving at some epoch, so something was skipped
