"""Where a trial runs: the Ray node and the accelerators Ray assigned to it.

Recorded in the trial's row (``node_ip``, ``gpu_ids``) and in its running marker, so that the
store alone shows how a sweep spread over a cluster: which node ran what, and which of a
multi-GPU node's devices each trial or fused group was given (Ray sets ``CUDA_VISIBLE_DEVICES``
to them, so ``cuda`` inside the trial is its first assigned device).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Placement:
    node_ip: str = ""  # the IP address of the Ray node; "" when the trial runs outside Ray
    gpu_ids: str = ""  # the accelerator ids Ray assigned, comma-separated ("0", "2,3"); "" for none

    @classmethod
    def of_ray_worker(cls) -> Placement:
        """The placement of the calling Ray worker (a trial actor)."""
        import ray

        ids = ray.get_gpu_ids()  # ids as Ray counts them on the node (strings or ints)
        return cls(ray.util.get_node_ip_address(), ",".join(str(i) for i in ids))


OUTSIDE_RAY = Placement()
