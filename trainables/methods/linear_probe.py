"""Linear probing: only the head trains; the pre-trained GNN is frozen."""

from __future__ import annotations

from torch import nn

from trainables.methods.base import FineTuningMethod, HyperParameter, MethodContext, Stage, register_method


def freeze_batch_norm_statistics(module: nn.Module) -> None:
    """Put every BatchNorm of ``module`` in eval mode, so its running statistics stop moving."""
    for child in module.modules():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            child.eval()


@register_method("lp")
class LinearProbe(FineTuningMethod):
    """Train ``graph_pred_linear`` only: ``min_{W, b} L(W . mean_pool(GNN_pre(G)) + b)``.

    As in the reference code, the frozen GNN stays in train mode (dropout on, BatchNorm running
    statistics still updated); ``freeze_bn_stats: true`` keeps its BatchNorm statistics fixed.
    """

    mechanism = "partial"
    hyperparameters = {
        "freeze_bn_stats": HyperParameter(bool, False, "keep the frozen GNN's BatchNorm running statistics fixed",
                                          choices=(False, True)),
    }

    def trainable_parameters(self, ctx: MethodContext, stage: Stage) -> list[nn.Parameter]:
        return list(ctx.model.head.parameters())

    def set_train_mode(self, ctx: MethodContext, stage: Stage) -> None:
        ctx.model.train()
        if self.params["freeze_bn_stats"]:
            freeze_batch_norm_statistics(ctx.model.gnn)
