"""Names a chemist reads in reports and figures, from the ids the store keeps.

``hu-gcn-supervised-contextpred`` is "GCN, supervised + ContextPred pre-training", ``scratch-gcn``
"GCN, random init (no pre-training)", ``bbbp`` "BBBP", ``fewshot:100`` "100 labelled molecules".
Names come from the trial rows (architecture, pre-training kind) and the backbone id alone: no
registry is imported (it would load torch).
"""

from __future__ import annotations

TASK_NAMES = {
    "bbbp": "BBBP",
    "clintox": "ClinTox",
    "tox21": "Tox21",
    "toxcast": "ToxCast",
    "sider": "SIDER",
    "hiv": "HIV",
    "muv": "MUV",
    "bace": "BACE",
    "esol": "ESOL",
    "freesolv": "FreeSolv",
    "lipophilicity": "Lipophilicity",
    "malaria": "Malaria",
    "cep": "CEP",
    "qm7": "QM7",
    "qm8": "QM8",
}
METHOD_NAMES = {
    "full-ft": "Full FT",
    "lp": "linear probing",
    "surgical-ft": "Surgical FT",
    "lp-ft": "LP-FT",
    "wise-ft": "WiSE-FT",
    "l2-sp": "L2-SP",
    "feature-map": "Feature-map",
    "bss": "BSS",
    "roft-mol": "RoFt-Mol",
}
ARCHITECTURE_NAMES = {"gin": "GIN", "gcn": "GCN", "graphsage": "GraphSAGE", "gat": "GAT", "gps": "GraphGPS"}
# the pre-training kind of a backbone (the trial row's ``pretraining``)
PRETRAINING_NAMES = {
    "none": "random init (no pre-training)",
    "self-supervised": "self-supervised pre-training",
    "supervised": "supervised pre-training",
    "both": "supervised + self-supervised pre-training",
}
# what the backbone id says more precisely than its kind
STRATEGY_NAMES = {
    "supervised-contextpred": "supervised + ContextPred pre-training",
    "contextpred": "ContextPred pre-training (self-supervised)",
    "supervised": "supervised pre-training (ChEMBL)",
    "attrmask": "attribute-masking pre-training",
    "contrastive": "contrastive pre-training",
    "descriptors": "descriptor-regression pre-training",
    "mole-bert": "Mole-BERT pre-training",
    "graphmae": "GraphMAE pre-training",
}
SPLIT_NAMES = {"scaffold": "scaffold split", "random": "random split", "size": "size split"}


def task_name(task: str) -> str:
    return TASK_NAMES.get(task, task)


def method_name(method: str) -> str:
    return METHOD_NAMES.get(method, method)


def pretraining_name(kind: str | None) -> str:
    return PRETRAINING_NAMES.get(kind or "", kind or "unknown pre-training")


def backbone_name(backbone: str, architecture: str | None = None, pretraining: str | None = None) -> str:
    """``GCN, supervised + ContextPred pre-training``; ``GIN, random init (no pre-training)``.

    ``architecture`` and ``pretraining`` are the trial row's columns (null in rows of older stores:
    then the id alone names it)."""
    architecture = architecture if isinstance(architecture, str) else None
    pretraining = pretraining if isinstance(pretraining, str) else None
    arch = ARCHITECTURE_NAMES.get(architecture or "", architecture or "")
    if not arch:
        arch = next((name for key, name in ARCHITECTURE_NAMES.items() if f"-{key}-" in f"-{backbone}-"), "")
    if pretraining == "none" or backbone.startswith("scratch-"):
        what = PRETRAINING_NAMES["none"]
    else:
        what = next(
            (
                name
                for key, name in sorted(STRATEGY_NAMES.items(), key=lambda item: -len(item[0]))
                if backbone == key or backbone.endswith(f"-{key}")
            ),
            None,
        ) or pretraining_name(pretraining)
    return f"{arch}, {what}" if arch else what


def label_setting_name(value: str) -> str:
    """``full`` -> all training labels; ``fewshot:100`` -> 100 labelled molecules; ``ratio:0.1`` -> 10% of the labels."""
    if value == "full":
        return "all training labels"
    kind, _, amount = value.partition(":")
    if kind == "fewshot":
        return f"{amount} labelled molecules"
    if kind == "ratio":
        try:
            return f"{float(amount) * 100:g}% of the labels"
        except ValueError:
            return value
    return value


def label_setting_order(value: str) -> tuple:
    """Sort key: fewshot:N by N, then ratio:r by r, then full."""
    if value.startswith("fewshot:"):
        return (0, float(value.split(":")[1]))
    if value.startswith("ratio:"):
        return (1, float(value.split(":")[1]))
    return (2, 0.0)


def split_name(split: str) -> str:
    return SPLIT_NAMES.get(split, split)
