"""The fast engine: K trials of one architecture and task trained as one fused model.

* :mod:`trainables.training.fused.batching`: the dataset resident on the device and mini-batches of all
  K trials gathered by tensor ops into one padded layout.
* :mod:`trainables.training.fused.model`: K :class:`~trainables.models.predictor.GraphPredictor` s as stacked
  parameters ``(K, ...)``, one batched kernel per layer serving every trial.
* :mod:`trainables.training.fused.engine`: the fine-tuning loop of :func:`trainables.training.trainer.fit` for a
  fused group, one result per trial.
"""
