"""Full fine-tuning: every parameter trains on the task loss (the baseline of the benchmark)."""

from trainables.methods.base import FineTuningMethod, register_method


@register_method("full-ft")
class FullFineTuning(FineTuningMethod):
    """All of theta = (theta_gnn, theta_head) minimises the task loss; base-class hooks."""

    mechanism = "baseline"
    fusable = True
