"""The fast engine: K trials of one architecture and task trained as one fused model.

* :mod:`trainables.fused.batching`: the dataset resident on the device and mini-batches of all
  K trials gathered by tensor ops into one padded layout.
* :mod:`trainables.fused.model`: K :class:`~trainables.gnn.GraphPredictor` s as stacked
  parameters ``(K, ...)``, one batched kernel per layer serving every trial.
* :mod:`trainables.fused.engine`: the fine-tuning loop of :func:`trainables.train.fit` for a
  fused group, one result per trial.
"""
