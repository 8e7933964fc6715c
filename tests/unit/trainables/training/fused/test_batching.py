import numpy as np
import pytest
import torch

from tests.unit.trainables.training.fused.conftest import DEVICES
from trainables.training.fused.batching import SLOT_MULTIPLE, DeviceGraphs


@pytest.mark.parametrize("device", DEVICES)
def test_each_trial_block_is_the_unfused_batch(molecules, device):
    ids = [np.array([5, 0, 17]), np.array([40, 41]), np.array([99, 3, 7, 64])]
    batch = DeviceGraphs(molecules, device).assemble(ids)
    S, G = batch.slots, batch.graphs
    assert (batch.num_trials, G) == (3, 4)
    assert S % SLOT_MULTIPLE == 0
    for k, trial_ids in enumerate(ids):
        single = molecules.batch(torch.from_numpy(trial_ids))
        n = single.x.shape[0]
        assert batch.nodes_per_trial[k] == n < S  # at least one padding slot
        assert torch.equal(batch.x[k * S:k * S + n].cpu(), single.x)
        assert not batch.x[k * S + n:(k + 1) * S].any()
        assert batch.node_mask[k].sum().item() == n and batch.node_mask[k, :n].all()
        mine = (batch.edge_src // S).cpu() == k
        assert torch.equal(torch.stack([batch.edge_src[mine.to(device)], batch.edge_dst[mine.to(device)]]).cpu() - k * S,
                           single.edge_index)
        assert torch.equal(batch.edge_attr[mine.to(device)].cpu(), single.edge_attr)
        assert torch.equal(batch.node_graph[k * S:k * S + n].cpu() - k * G, single.batch)
        assert (batch.node_graph[k * S + n:(k + 1) * S] == 3 * G).all()  # padding -> the dummy graph
        assert torch.equal(batch.y[k, :len(trial_ids)].cpu(), single.y)
        assert torch.isnan(batch.y[k, len(trial_ids):]).all()
        counts = torch.bincount(single.batch, minlength=len(trial_ids)).float()
        assert torch.equal(batch.graph_count[k * G:k * G + len(trial_ids)].cpu(), counts)


def test_edges_never_cross_trials(molecules):
    batch = DeviceGraphs(molecules, "cpu").assemble([np.arange(10), np.arange(10, 30)])
    assert torch.equal(batch.edge_src // batch.slots, batch.edge_dst // batch.slots)
