"""roft's fine-tuning methods, step for step, against the RoFt-Mol scripts' computations (``reference_methods.py``).

As ``tests/unit/trainables/training/test_step_exact.py`` (whose preparation, runs and comparison
this module reuses): each trial is prepared by roft's own ``prepare_trial`` (seed, split,
``fewshot:256``, model built under the seed), made float64, trained by roft's unfused trainer
(``fit``) and, where the method fuses, by the fused engine (``fit_fused``); the reference trains
a deep copy of the same initial model with the same batch order. Dropout is off. Per run: every
step's task loss (20 steps at least), every epoch's mean loss as roft records it (task loss
plus the method's terms), the state dict after the last step and at the best epoch, every
epoch's valid and test metric and the best epoch, with the tolerances stated there.

Cases: Tox21 (12 label columns, missing labels) on a GIN from scratch 5 x 64 and on a GCN from
scratch 5 x 64; ESOL (regression) on the Hu et al. GCN ``hu-gcn-supervised-contextpred`` and on
a GIN from scratch 5 x 64. Every method is run with its reference settings (the
hyper-parameters that reproduce the scripts); each comparison is shown able to fail by a
reference with one setting perturbed.

WiSE-FT and RoFt-Mol interpolate toward a Full-FT checkpoint: the reference Full-FT loop's best
epoch (``reference_loop.finetune``, 3 epochs) of the same cell and seed, handed to roft in place
of the store's parent checkpoint.

RoFt-Mol on a GCN: the script's ``GNN_interpolate`` leaves the convolutions' ``linear`` weights
at theta_ft (its name filter knows GIN's ``mlp`` only); roft interpolates every float parameter.
The GCN comparisons use a reference that interpolates every parameter, and
``test_roft_mol_gcn_linear_weights_filter_changes_the_metric`` measures what the filter changes.

The largest differences of every comparison are printed (run with ``-s``).
"""

from __future__ import annotations

import copy
import math
import re

import numpy as np
import pytest
import torch

import trainables.worker.trial as trial_module
from tests.unit.trainables.methods import reference_methods as methods
from tests.unit.trainables.training import reference_loop as reference
from tests.unit.trainables.training.test_step_exact import (  # noqa: F401  (runtime: a fixture)
    BATCH_SIZE,
    CPU,
    EPOCHS,
    FUSED_STATE_ATOL,
    LABEL_SETTING,
    LR,
    N_TRAIN,
    STATE_ATOL,
    Prepared,
    assert_states_close,
    compare,
    metric_approx,
    run_fused,
    run_unfused,
    runtime,
    state_differences,
)
from trainables.core.config import TrainingRecipe, TrialSpec
from trainables.data.splits import SPLIT_SEED
from trainables.worker.trial import ParentCheckpoint, prepare_trial

pytestmark = [pytest.mark.data, pytest.mark.slow]

TOX21_GIN = {"task": "tox21", "backbone": "scratch-gin", "num_layers": 5, "emb_dim": 64}
TOX21_GCN = {"task": "tox21", "backbone": "scratch-gcn", "num_layers": 5, "emb_dim": 64}
ESOL_GCN = {"task": "esol", "backbone": "hu-gcn-supervised-contextpred"}
ESOL_GIN = {"task": "esol", "backbone": "scratch-gin", "num_layers": 5, "emb_dim": 64}
CASES = {"tox21-gin": TOX21_GIN, "tox21-gcn": TOX21_GCN, "esol-gcn": ESOL_GCN, "esol-gin": ESOL_GIN}

D, D_HEAD, K = 0.01, 0.002, 1
REGULARIZED = {  # roft's method -> (the script's regularization_type, roft's reference settings)
    "l2-sp": ("l2_sp", {"d": D, "d_head": D_HEAD, "grad_clip": 10.0, "l2sp_scope": "all"}),
    "feature-map": ("feature_map", {"d": D, "d_head": D_HEAD, "grad_clip": 10.0}),
    "bss": ("bss", {"d": D, "d_head": D_HEAD, "k": K, "grad_clip": 10.0}),
}
# A GIN's second MLP bias feeds a training-mode BatchNorm, which cancels it: its task gradient is
# rounding noise, which Adam turns into steps of up to lr * noise / eps, so where two computations
# round differently these biases (and the running means that follow them) drift apart: by ~4e-10
# under the fused engine's Full FT, ~1e-9 (BSS, unfused) and ~7e-8 (Feature-map, fused) in 24 steps.
# They are compared with NOISE_ATOL (a thousandth of one Adam step of lr 1e-3); everything else with
# the stated tolerance.
NOISE_ATOL = 1e-6
NOISE_DRIVEN = re.compile(r"gnn\.gnns\.\d+\.mlp\.2\.bias|gnn\.batch_norms\.\d+\.running_mean")
# BSS: the script's torch.svd of the transposed embeddings and roft's torch.linalg.svdvals round
# differently (~1e-14 in the step losses, ~1e-11 in the weights after 24 steps), and ROC-AUC may
# then move by a tie: the fused engine's tolerances (test_step_exact's module doc).
UNFUSED_TOLERANCES = {"bss": (FUSED_STATE_ATOL, False)}
# L2-SP is not compared fused on a GIN: with Adam, a weight whose task gradient is ~0 (a GIN's
# BatchNorm-cancelled biases, nearly dead units) is pulled back toward its anchor with steps of
# lr * d * (w - w_pre) / eps, a gain of lr * d / eps = 1000 at d = 0.01: the pull overshoots and
# grows 1000-fold per step (seeded by rounding noise) until Adam saturates at steps of lr. Any
# change of rounding then moves real weights: the reference against itself with its initial weights
# scaled by 1 + 1e-15 noise differs by 5e-8 in the step losses and 2e-4 in ROC-AUC after 24 steps,
# the fused engine against the reference by 6e-4 and 6e-4. On a GCN the fused L2-SP agrees to 1e-15.
FUSED_METHODS = {"gin": ("feature-map", "bss"), "gcn": tuple(REGULARIZED)}
LP_EPOCHS, FT_EPOCHS = 2, 2
WISE_ALPHA = 0.3
ROFT_MOL = {"alpha_init": 0.9, "alpha_lr": 1e-2, "bn_stats": "ft", "bn_mode": "train", "fit_order": "fixed",
            "tied_updates": "repeated"}
ROFT_MOL_STEPS = 20  # at least this many alpha steps per run


# --------------------------------------------------------------------------- preparation

def prepare(case: dict, method: str, params: dict, runtime, seed: int = 0, epochs: int = EPOCHS) -> Prepared:
    """A trial of ``method`` prepared by roft (dropout off), made float64."""
    recipe = TrainingRecipe(epochs=epochs, batch_size=BATCH_SIZE, lr=LR, dropout=0.0)
    spec = TrialSpec(case["backbone"], method, case["task"], "scaffold", LABEL_SETTING, seed, SPLIT_SEED,
                     recipe=recipe, method_params=params, num_layers=case.get("num_layers"),
                     emb_dim=case.get("emb_dim"))
    trial = prepare_trial(spec, runtime, None, CPU)
    trial.model.double()
    prepared = Prepared(trial, copy.deepcopy(trial.model), torch.get_rng_state())
    assert len(trial.indices.train) == N_TRAIN
    return prepared


def graphs(prepared: Prepared, part: str) -> list:
    trial = prepared.trial
    return reference.reference_graphs(trial.data, trial.indices.part(part), prepared.regression)


def all_graphs(prepared: Prepared) -> tuple[list, list, list]:
    return tuple(graphs(prepared, part) for part in ("train", "valid", "test"))


def shuffle_generator(prepared: Prepared) -> torch.Generator:
    return torch.Generator().manual_seed(prepared.trial.spec.seed)


def initial(prepared: Prepared) -> torch.nn.Module:
    return copy.deepcopy(prepared.initial)


# --------------------------------------------------------------------------- regularised methods

def source_head(prepared: Prepared) -> dict[str, torch.Tensor]:
    """roft's second random head (the L2-SP anchor of the head), as the reference's source head."""
    method = prepared.trial.method
    model = prepared.initial
    anchors = method.anchors(dict(model.named_parameters()), model.state_dict(), prepared.trial.spec.seed)
    return {name.split(".", 1)[1]: anchors[name].to(torch.float64) for name in anchors
            if name.startswith("graph_pred_linear.")}


def state_tolerance(atol: float, prepared: Prepared):
    """``atol`` for every entry, ``NOISE_ATOL`` for a GIN's noise-driven entries."""
    gin = prepared.trial.model.gnn.shape.gnn_type == "gin"
    return lambda name: NOISE_ATOL if gin and NOISE_DRIVEN.fullmatch(name) else atol


def run_regularized(prepared: Prepared, method: str, **changes) -> methods.MethodRun:
    """reg_ft.py's loop with ``method``'s reference settings and the trial's ``double_forward``, any of its
    arguments changed by ``changes``.

    With two passes the penalty is built before the second one, where roft builds it (the script
    builds it after: the same sum, accumulated into the gradients in another order; under L2-SP on
    a GIN that rounding is amplified, see ``FUSED_METHODS``)."""
    regularization, params = REGULARIZED[method]
    double_forward = changes.get("double_forward", prepared.trial.method.params["double_forward"])
    settings = {"trade_off": params["d"], "trade_off_head": params["d_head"], "k": params.get("k", 1),
                "source_head": source_head(prepared) if method == "l2-sp" else None,
                "double_forward": double_forward, "penalty_first": double_forward, **changes}
    return methods.regularized_finetune(initial(prepared), *all_graphs(prepared), regression=prepared.regression,
                                        epochs=EPOCHS, regularization=regularization, lr=LR,
                                        shuffle_generator=shuffle_generator(prepared), **settings)


@pytest.mark.parametrize("double_forward", [True, False])
@pytest.mark.parametrize("method", list(REGULARIZED))
@pytest.mark.parametrize("case", ["tox21-gin", "esol-gcn"])
def test_regularized_method_equals_the_reference(runtime, monkeypatch, case, method, double_forward):
    """reg_ft.py's L2-SP, Feature-map and BSS with two forward passes per step (the script) and with one
    (roft's default), unfused; with one pass also fused, the three methods in one group."""
    params = {**REGULARIZED[method][1], "double_forward": double_forward}
    prepared = prepare(CASES[case], method, params, runtime)
    roft = run_unfused(prepared, monkeypatch)
    label = f"{method} {case} double_forward={double_forward}"
    atol, float32_exact = UNFUSED_TOLERANCES.get(method, (STATE_ATOL, True))
    compare(f"unfused {label}", roft, run_regularized(prepared, method), prepared.regression,
            state_tolerance(atol, prepared), float32_exact)


@pytest.mark.parametrize("case", ["esol-gcn", "tox21-gcn"])
def test_regularized_methods_fused_equal_the_reference(runtime, monkeypatch, case):
    """The fused engine, the regularised methods in one group (one forward pass, as it fuses them), on a
    GCN. On a GIN the fused sums' rounding, amplified by Adam through the pre-BatchNorm MLP biases whose
    task gradient is zero in exact arithmetic (docs/engine.md, Same results), moves the first MLP layer
    by some 1e-8 in 24 steps: the GIN cases are compared unfused above, and fused against unfused in
    tests/unit/trainables/training/fused."""
    chosen = FUSED_METHODS[case.split("-")[1]]
    members = [prepare(CASES[case], method, {**REGULARIZED[method][1], "double_forward": False}, runtime)
               for method in chosen]
    fused = run_fused(members, monkeypatch)
    for method, member, roft in zip(chosen, members, fused):
        compare(f"fused {method} {case} double_forward=False (K={len(members)})", roft,
                run_regularized(member, method), member.regression, state_tolerance(FUSED_STATE_ATOL, member), False)


def test_regularized_comparisons_catch_a_changed_setting(runtime, monkeypatch):
    """Each regularised comparison (Tox21, GCN 5 x 64, two passes, the tolerances above) fails against a
    reference with one setting changed: the strengths d and d_head times 1.0001, one pass instead of
    two, the head's anchor (the target's own head), the recorded layer (the fourth), k = 2."""
    perturbations = {
        "l2-sp": [{"trade_off": D * 1.0001}, {"trade_off_head": D_HEAD * 1.0001}, {"double_forward": False},
                  {"source_head": None}],
        "feature-map": [{"trade_off": D * 1.0001}, {"trade_off_head": D_HEAD * 1.0001},
                        {"feature_module": "gnn.gnns.3"}],
        "bss": [{"trade_off": D * 1.0001}, {"k": 2}],
    }
    for method, changes in perturbations.items():
        params = {**REGULARIZED[method][1], "double_forward": True}
        prepared = prepare(TOX21_GCN, method, params, runtime)
        roft = run_unfused(prepared, monkeypatch)
        atol, float32_exact = UNFUSED_TOLERANCES.get(method, (STATE_ATOL, True))
        for change in changes:
            perturbed = run_regularized(prepared, method, **change)
            with pytest.raises(AssertionError):
                compare(f"{method} perturbed {change}", roft, perturbed, False, state_tolerance(atol, prepared),
                        float32_exact)


# --------------------------------------------------------------------------- partial methods

def run_partial(prepared: Prepared, tune_option: str, lr: float = LR, extra=None) -> methods.MethodRun:
    return methods.partial_finetune(initial(prepared), *all_graphs(prepared), regression=prepared.regression,
                                    epochs=EPOCHS, tune_option=tune_option, extra_parameters=extra, lr=lr,
                                    shuffle_generator=shuffle_generator(prepared))


PARTIAL = {"lp": ({}, "linear_layer"), "surgical-ft layer 0": ({"layer": 0}, "first_linear"),
           "surgical-ft layer 4": ({"layer": 4}, "fifth_linear")}


@pytest.mark.parametrize("name", list(PARTIAL))
@pytest.mark.parametrize("case", ["tox21-gin", "esol-gcn"])
def test_partial_method_equals_the_reference(runtime, monkeypatch, case, name):
    """LP and Surgical FT (finetune_ood.py's tune_option linear_layer / first_linear / fifth_linear): roft
    freezes the rest (requires_grad off), the script leaves every parameter trainable and steps only
    the optimizer's; both keep every BatchNorm in train mode."""
    params, tune_option = PARTIAL[name]
    prepared = prepare(CASES[case], name.split()[0], params, runtime)
    roft = run_unfused(prepared, monkeypatch)
    compare(f"unfused {name} {case}", roft, run_partial(prepared, tune_option), prepared.regression, STATE_ATOL,
            True)


@pytest.mark.parametrize("case", ["tox21-gin", "esol-gcn"])
def test_partial_methods_fused_equal_the_reference(runtime, monkeypatch, case):
    """The fused engine, one group of LP, Surgical FT layer 0 and layer 4 (frozen slices take zero gradients)."""
    members = [prepare(CASES[case], name.split()[0], PARTIAL[name][0], runtime) for name in PARTIAL]
    fused = run_fused(members, monkeypatch)
    for name, member, roft in zip(PARTIAL, members, fused):
        compare(f"fused {name} {case} (K={len(members)})", roft, run_partial(member, PARTIAL[name][1]),
                member.regression, FUSED_STATE_ATOL, False)


def test_partial_comparisons_catch_a_changed_setting(runtime, monkeypatch):
    """LP against lr * 1.0001; Surgical FT layer 0 against layer 1 and against also training the layer's
    BatchNorm (roft's behaviour before ``train_batch_norm``)."""
    prepared = prepare(TOX21_GIN, "lp", {}, runtime)
    roft = run_unfused(prepared, monkeypatch)
    with pytest.raises(AssertionError):
        compare("lp perturbed lr", roft, run_partial(prepared, "linear_layer", lr=LR * 1.0001), False,
                FUSED_STATE_ATOL, False)
    prepared = prepare(TOX21_GIN, "surgical-ft", {"layer": 0}, runtime)
    roft = run_unfused(prepared, monkeypatch)
    for label, perturbed in (
            ("layer 1", run_partial(prepared, "second_linear")),
            ("with batch_norms.0", run_partial(prepared, "first_linear",
                                               extra=lambda model: list(model.gnn.batch_norms[0].parameters())))):
        with pytest.raises(AssertionError):
            compare(f"surgical-ft perturbed {label}", roft, perturbed, False, FUSED_STATE_ATOL, False)


def run_lp_ft(prepared: Prepared, lr: float = LR, carry_head_moments: bool = False) -> methods.MethodRun:
    return methods.lp_ft(initial(prepared), *all_graphs(prepared), regression=prepared.regression,
                         lp_epochs=LP_EPOCHS, ft_epochs=FT_EPOCHS, lr=lr, shuffle_generator=shuffle_generator(prepared),
                         carry_head_moments=carry_head_moments)


LP_FT = {"copy_best_head": False, "lp_epochs": LP_EPOCHS, "ft_epochs": FT_EPOCHS}


@pytest.mark.parametrize("case", ["tox21-gin", "esol-gcn"])
def test_lp_ft_equals_the_reference(runtime, monkeypatch, case):
    """lp_ft.py: LP epochs, then FT from the last LP head with a fresh Adam; the reported epoch is the FT
    stage's best (epochs numbered across both stages)."""
    prepared = prepare(CASES[case], "lp-ft", LP_FT, runtime)
    roft = run_unfused(prepared, monkeypatch)
    ref = run_lp_ft(prepared)
    assert [record.stage for record in roft[1].history] == ref.stages == ["lp"] * LP_EPOCHS + ["ft"] * FT_EPOCHS
    assert roft[1].best_stage == "ft"
    compare(f"unfused lp-ft {case}", roft, ref, prepared.regression, STATE_ATOL, True, epochs=LP_EPOCHS + FT_EPOCHS)


@pytest.mark.parametrize("case", ["tox21-gin", "esol-gcn"])
def test_lp_ft_fused_equals_the_reference(runtime, monkeypatch, case):
    """The fused engine, LP-FT for seeds 0 and 1 in one group (a fresh Adam per stage)."""
    members = [prepare(CASES[case], "lp-ft", LP_FT, runtime, seed=seed) for seed in (0, 1)]
    fused = run_fused(members, monkeypatch)
    for seed, member, roft in zip((0, 1), members, fused):
        compare(f"fused lp-ft {case} seed={seed} (K={len(members)})", roft, run_lp_ft(member), member.regression,
                FUSED_STATE_ATOL, False, epochs=LP_EPOCHS + FT_EPOCHS)


def test_lp_ft_comparison_catches_a_changed_setting(runtime, monkeypatch):
    """Against lr * 1.0001, and against an FT stage whose Adam continues the LP stage's moments of the head."""
    prepared = prepare(TOX21_GIN, "lp-ft", LP_FT, runtime)
    roft = run_unfused(prepared, monkeypatch)
    for label, perturbed in (("lr", run_lp_ft(prepared, lr=LR * 1.0001)),
                             ("head moments carried", run_lp_ft(prepared, carry_head_moments=True))):
        with pytest.raises(AssertionError):
            compare(f"lp-ft perturbed {label}", roft, perturbed, False, FUSED_STATE_ATOL, False,
                    epochs=LP_EPOCHS + FT_EPOCHS)


# --------------------------------------------------------------------------- interpolation methods

def full_ft_parent(case: dict, runtime) -> dict[str, torch.Tensor]:
    """theta_ft: the reference Full-FT loop's best-validation state (3 epochs) of the cell and seed 0."""
    parent = prepare(case, "full-ft", {}, runtime)
    run = reference.finetune(initial(parent), *all_graphs(parent), regression=parent.regression, epochs=EPOCHS,
                             batch_size=BATCH_SIZE, lr=LR, shuffle_generator=shuffle_generator(parent))
    return run.best_state


def prepare_dependant(case: dict, method: str, params: dict, runtime, monkeypatch, theta_ft: dict,
                      epochs: int = EPOCHS) -> Prepared:
    """A WiSE-FT or RoFt-Mol trial prepared by roft with ``theta_ft`` as its parent's checkpoint."""
    monkeypatch.setattr(trial_module, "load_parent_state",
                        lambda spec, store: ParentCheckpoint("reference-full-ft", "", theta_ft))
    return prepare(case, method, params, runtime, epochs=epochs)


def pretrained_gnn(prepared: Prepared) -> dict[str, torch.Tensor]:
    return {key.split(".", 1)[1]: value for key, value in prepared.initial.state_dict().items()
            if key.startswith("gnn.")}


def wise_tolerance(prepared: Prepared, theta_ft: dict, alpha: float):
    """Per entry: ``STATE_ATOL`` plus what rounding alpha to float32 moves it by, ``|alpha - fl32(alpha)|
    max |w_ft - w_pre|`` (roft interpolates with a float32 alpha whatever the model's precision; the
    script with the Python float)."""
    rounding = abs(alpha - float(np.float32(alpha)))
    pre = prepared.initial.state_dict()
    return lambda name: STATE_ATOL + 1.01 * rounding * float((theta_ft[name].double() - pre[name].double()).abs().max())


@pytest.mark.parametrize("case", ["tox21-gin", "esol-gcn"])
def test_wise_ft_equals_the_reference(runtime, monkeypatch, case):
    """WISE.py: theta = (1 - alpha) theta_pre + alpha theta_ft over every encoder entry (BatchNorm running
    statistics too), the fine-tuned head, one evaluation. The script also interpolates the integer
    ``num_batches_tracked`` (truncated back to int64); roft takes it from theta_ft: it only differs
    there, and no output can (BatchNorm's momentum is fixed, so the counter is never read: checked
    by scoring roft's state with the script's counters)."""
    theta_ft = full_ft_parent(CASES[case], runtime)
    params = {"alpha": WISE_ALPHA, "bn_stats": "interpolate"}
    prepared = prepare_dependant(CASES[case], "wise-ft", params, runtime, monkeypatch, theta_ft)
    _, result, _ = run_unfused(prepared, monkeypatch)
    ref = methods.wise_ft(initial(prepared), pretrained_gnn(prepared), theta_ft, WISE_ALPHA, graphs(prepared, "valid"),
                          graphs(prepared, "test"), regression=prepared.regression)

    counters = [key for key in ref.final_state if key.endswith("num_batches_tracked")]
    assert counters and all(module.momentum is not None for module in prepared.initial.modules()
                            if isinstance(module, torch.nn.BatchNorm1d))
    counter_values = {key: (int(result.best_state[key]), int(ref.final_state[key])) for key in counters}
    others = {key: value for key, value in ref.final_state.items() if key not in counters}
    roft_others = {key: result.best_state[key] for key in others}
    assert_states_close(roft_others, others, wise_tolerance(prepared, theta_ft, WISE_ALPHA))
    assert all(torch.equal(result.best_state[key], theta_ft[key]) for key in counters)

    # roft's state scores the same with the script's counters
    with_roft_state, with_script_counters = initial(prepared), initial(prepared)
    with_roft_state.load_state_dict(result.best_state)
    with_script_counters.load_state_dict({**result.best_state, **{key: ref.final_state[key] for key in counters}})
    for part in ("valid", "test"):
        _, roft_scores = reference.predict(with_roft_state, torch_loader(prepared, part))
        _, counter_scores = reference.predict(with_script_counters, torch_loader(prepared, part))
        assert np.array_equal(roft_scores, counter_scores)
    assert len(result.history) == 1
    record = result.history[0]
    metric_gap = 0.0
    for got, part in ((record.val, "valid"), (record.test, "test")):
        y_true, y_scores = ref.outputs[0][part]  # scored as roft scores: float32 outputs
        want = reference.metric(y_true, y_scores.astype(np.float32), prepared.regression)
        metric_gap = max(metric_gap, abs(got - want))
        assert got == metric_approx(want, prepared.regression), (case, part)
    abs_state, rel_state, where = state_differences(roft_others, others)
    print(f"\n[step-exact] wise-ft {case} alpha={WISE_ALPHA}: state_abs={abs_state:.3g}, state_rel={rel_state:.3g} "
          f"({where}), metric_abs={metric_gap:.3g}, val={record.val:.6g} (reference {ref.val[0]:.6g}), "
          f"test={record.test:.6g} (reference {ref.test[0]:.6g}); num_batches_tracked roft vs script: {counter_values}")


def torch_loader(prepared: Prepared, part: str):
    from torch_geometric.loader import DataLoader

    return DataLoader(graphs(prepared, part), batch_size=BATCH_SIZE, shuffle=False,
                      generator=torch.Generator().manual_seed(0))


def test_wise_ft_comparison_catches_a_changed_alpha(runtime, monkeypatch):
    """Against alpha * 1.0001, with the tolerance of the comparison above."""
    theta_ft = full_ft_parent(TOX21_GIN, runtime)
    prepared = prepare_dependant(TOX21_GIN, "wise-ft", {"alpha": WISE_ALPHA, "bn_stats": "interpolate"}, runtime,
                                 monkeypatch, theta_ft)
    _, result, _ = run_unfused(prepared, monkeypatch)
    perturbed = methods.wise_ft(initial(prepared), pretrained_gnn(prepared), theta_ft, WISE_ALPHA * 1.0001,
                                graphs(prepared, "valid"), graphs(prepared, "test"), regression=False)
    others = {key: value for key, value in perturbed.final_state.items() if not key.endswith("num_batches_tracked")}
    with pytest.raises(AssertionError):
        assert_states_close({key: result.best_state[key] for key in others}, others,
                            wise_tolerance(prepared, theta_ft, WISE_ALPHA))


def roft_mol_epochs(prepared_case: dict) -> int:
    return 2 if prepared_case["task"] == "tox21" else 5


def valid_in_split_order(prepared: Prepared) -> list:
    """The validation molecules in the split's own order, as the script's unshuffled ``val_loader``."""
    trial = prepared.trial
    return reference.reference_graphs(trial.data, trial.indices.in_split_order("valid"), prepared.regression)


def run_dwise(prepared: Prepared, theta_ft: dict, groups: int, epochs: int, interpolate: str,
              alpha_lr: float = ROFT_MOL["alpha_lr"], alpha_list=None, tied_updates: str = "repeated",
              bn_mode: str = "train") -> methods.MethodRun:
    model = methods.InterpolatedModel(initial(prepared), pretrained_gnn(prepared), theta_ft, groups,
                                      ROFT_MOL["alpha_init"], interpolate=interpolate, alpha_list=alpha_list)
    return methods.dwise(model, valid_in_split_order(prepared), graphs(prepared, "test"), regression=prepared.regression,
                         epochs=epochs, lr=alpha_lr, tied_updates=tied_updates, bn_mode=bn_mode)


def run_roft_mol(prepared: Prepared, monkeypatch):
    losses, result, _ = run_unfused(prepared, monkeypatch)
    final = {key: value.detach().clone() for key, value in prepared.trial.method.snapshot(prepared.trial.ctx).items()}
    return losses, result, final


def compare_roft_mol(label: str, prepared: Prepared, roft, ref: methods.MethodRun, epochs: int) -> None:
    steps_per_epoch = math.ceil(len(prepared.trial.indices.valid) / BATCH_SIZE)
    assert epochs * steps_per_epoch >= ROFT_MOL_STEPS
    report = compare(label, roft, ref, prepared.regression, STATE_ATOL, True, epochs=epochs,
                     steps_per_epoch=steps_per_epoch)
    result = roft[1]
    np.testing.assert_allclose(result.summary["alphas"], methods.alpha_values(ref, result.best_epoch), rtol=1e-9,
                               atol=0, err_msg=f"{label}: alphas at the best epoch")
    final_alphas = result.summary.get("final_alphas", result.summary["alphas"])
    np.testing.assert_allclose(final_alphas, methods.alpha_values(ref, epochs), rtol=1e-9, atol=0,
                               err_msg=f"{label}: final alphas")
    print(f"[step-exact] {label}: alphas {final_alphas} (reference {ref.alphas[-1]}); {report['state_worst']}")


@pytest.mark.parametrize("groups", [1, 2, 3, 6])
@pytest.mark.parametrize("case", ["tox21-gin", "esol-gcn"])
def test_roft_mol_equals_the_reference(runtime, monkeypatch, case, groups):
    """DWISE.py: alphas fitted on validation in its order, model in train mode (BatchNorm on batch
    statistics, running statistics drifting from theta_ft's), tied alphas updated once per layer
    that shares them. GCN: the reference interpolates every parameter (roft's way; see the module doc)."""
    theta_ft = full_ft_parent(CASES[case], runtime)
    epochs = roft_mol_epochs(CASES[case])
    params = {**ROFT_MOL, "groups": groups, "epochs": epochs}
    prepared = prepare_dependant(CASES[case], "roft-mol", params, runtime, monkeypatch, theta_ft)
    roft = run_roft_mol(prepared, monkeypatch)
    interpolate = "reference" if case.endswith("gin") else "all"
    ref = run_dwise(prepared, theta_ft, groups, epochs, interpolate)
    compare_roft_mol(f"unfused roft-mol {case} groups={groups} ({interpolate})", prepared, roft, ref, epochs)


def test_roft_mol_comparison_catches_a_changed_setting(runtime, monkeypatch):
    """groups 3 against alpha_lr * 1.0001, another tying of the layers, each tied alpha updated once,
    BatchNorm in eval mode while fitting."""
    theta_ft = full_ft_parent(TOX21_GIN, runtime)
    epochs = roft_mol_epochs(TOX21_GIN)
    params = {**ROFT_MOL, "groups": 3, "epochs": epochs}
    prepared = prepare_dependant(TOX21_GIN, "roft-mol", params, runtime, monkeypatch, theta_ft)
    roft = run_roft_mol(prepared, monkeypatch)
    for label, change in (("alpha_lr", {"alpha_lr": ROFT_MOL["alpha_lr"] * 1.0001}),
                          ("tying", {"alpha_list": (0, 0, 1, 1, 2, 2)}),
                          ("tied updates once", {"tied_updates": "once"}),
                          ("bn eval", {"bn_mode": "eval"})):
        perturbed = run_dwise(prepared, theta_ft, 3, epochs, "reference", **change)
        with pytest.raises(AssertionError):
            compare_roft_mol(f"roft-mol perturbed {label}", prepared, roft, perturbed, epochs)


def test_roft_mol_gcn_linear_weights_filter_changes_the_metric(runtime):
    """The script's GNN_interpolate leaves a GCN's ``linear`` weights at theta_ft; roft interpolates them.
    At alpha = 0.5 (no fitting, eval mode) the two give different outputs on ESOL with the Hu GCN;
    the metrics of both ways are printed."""
    theta_ft = full_ft_parent(ESOL_GCN, runtime)
    prepared = prepare(ESOL_GCN, "full-ft", {}, runtime)
    metrics = {}
    for interpolate in ("reference", "all"):
        model = methods.InterpolatedModel(initial(prepared), pretrained_gnn(prepared), theta_ft, 1, 0.5,
                                          interpolate=interpolate)
        for part in ("valid", "test"):
            with torch.no_grad():
                y_true, y_scores = reference.predict(model, torch_loader(prepared, part))
            metrics[(interpolate, part)] = reference.metric(y_true, y_scores, True)
    linear = [key for key in theta_ft if ".linear." in key]
    assert linear and all(not torch.equal(theta_ft[key], prepared.initial.state_dict()[key]) for key in linear)
    assert metrics[("reference", "valid")] != pytest.approx(metrics[("all", "valid")], rel=1e-6)
    print(f"\n[roft-mol gcn alpha=0.5] ESOL RMSE, script's filter (linear at theta_ft): valid "
          f"{metrics[('reference', 'valid')]:.6f} test {metrics[('reference', 'test')]:.6f}; every parameter "
          f"(roft): valid {metrics[('all', 'valid')]:.6f} test {metrics[('all', 'test')]:.6f}")
