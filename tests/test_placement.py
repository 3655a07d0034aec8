"""Table-driven tests of placement and queue policies on hand-built views."""

import numpy as np
import pytest

from simcluster.policies.placement import PLACEMENT_POLICIES, FirstFit, Pack, host_capacity
from simcluster.policies.queue import QUEUE_POLICIES, Fifo
from simcluster.policies.view import ClusterView, StaticView
from simcluster.workload.jobs import JobSpec, Request

F, B = 1.0, 0.0  # free, busy


@pytest.mark.parametrize(
    ("hosts", "per_rack", "free", "request_", "first_fit", "pack"),
    [
        # one host fits: first fit takes the first idle GPUs, pack the fullest host that fits
        ([4, 4], 32, [B, B, F, F, F, F, F, F], Request(2), (2, 3), (2, 3)),
        ([4, 4], 32, [F, F, F, F, B, B, F, F], Request(2), (0, 1), (6, 7)),
        # a whole node for a 4-GPU job: pack avoids splitting it
        ([4, 4], 32, [B, F, F, F, F, F, F, F], Request(4), (1, 2, 3, 4), (4, 5, 6, 7)),
        # spanning: pack takes the fewest hosts (host 2 has 4 idle, host 1 has 2)
        ([4, 4, 4], 32, [B, B, B, F, F, F, B, B, F, F, F, F], Request(6),
         (3, 4, 5, 8, 9, 10), (4, 5, 8, 9, 10, 11)),
        # racks of one host: pack stays in the rack that needs fewest hosts
        ([2, 2, 2, 2], 2, [F, B, B, F, F, F, F, F], Request(4), (0, 3, 4, 5), (4, 5, 6, 7)),
        # does not fit
        ([2, 2], 32, [F, B, B, F], Request(3), None, None),
        # fractional: first fit takes the first GPU with room, pack the fullest that fits
        ([2, 2], 32, [0.3, 1.0, 0.5, 1.0], Request(0.5), (1,), (2,)),
        ([2], 32, [0.3, 0.2], Request(0.5), None, None),
    ],
)
def test_placement_table(hosts, per_rack, free, request_, first_fit, pack):
    view = StaticView(hosts, hosts_per_rack=per_rack, gpu_free=free)
    assert FirstFit().place(request_, view) == first_fit
    assert Pack().place(request_, view) == pack


def test_type_constraint():
    view = StaticView([2, 2])
    assert FirstFit().place(Request(1, gpu_type="B200"), view) is None
    assert FirstFit().place(Request(1, gpu_type="H100-SXM"), view) == (0,)


def test_cpu_and_memory_limit_capacity():
    view = StaticView([8], cpus_per_host=16.0)        # 2 cores per GPU by default
    assert host_capacity(Request(8, cpus_per_gpu=4.0), view).tolist() == [4]
    assert FirstFit().place(Request(8, cpus_per_gpu=4.0), view) is None
    assert FirstFit().place(Request(4, cpus_per_gpu=4.0), view) == (0, 1, 2, 3)
    assert host_capacity(Request(2, memory_per_gpu=2.0**40), view).tolist() == [2]


def test_views_are_read_only():
    view = StaticView([2])
    assert isinstance(view, ClusterView)
    with pytest.raises(ValueError):
        view.gpu_free[0] = 0.0


def test_fifo_orders_by_submit_then_id():
    jobs = [JobSpec(id=i, submit_s=s, request=Request(1), model="mlp")
            for i, s in [(3, 1.0), (1, 2.0), (2, 1.0)]]
    assert [j.id for j in sorted(jobs, key=Fifo().key)] == [2, 3, 1]
    assert Fifo().blocking and not Fifo(blocking=False).blocking


def test_registries():
    assert {"first_fit", "pack"} <= set(PLACEMENT_POLICIES.names())
    assert "fifo" in QUEUE_POLICIES
    assert np.all(StaticView([1]).gpu_type_mask(None))


def test_allocation_rejects_duplicate_and_foreign_gpus():
    from simcluster.engine.cluster import AllocationError, ClusterState
    from simcluster.hardware import node_spec
    from simcluster.topology import gpu_cluster

    state = ClusterState(gpu_cluster(node_spec("H100-SXM"), nodes=1))
    for bad in [(0, 0), (0, -1), (0, 8)]:
        with pytest.raises(AllocationError):
            state.allocate(Request(2), bad)
    held = state.allocate(Request(2), (0, 1))
    with pytest.raises(AllocationError):
        state.allocate(Request(1), (1,))          # already taken
    state.release(held)
    with pytest.raises(AllocationError):
        state.release(held)                       # released twice: frees more than was taken
    state.check()
    assert state.allocated == 0.0


def test_pack_prefers_fewer_nodes_over_staying_in_one_rack():
    # 3 racks of 4 hosts x 8 GPUs: racks 0 and 1 have one idle host each, rack 2 has 4 idle
    # GPUs on each host. 16 GPUs: two whole hosts across racks beat four half hosts in one rack
    free = []
    for rack in range(3):
        for host in range(4):
            if rack < 2:
                free += [F] * 8 if host == 0 else [B] * 8
            else:
                free += [F] * 4 + [B] * 4
    view = StaticView([8] * 12, hosts_per_rack=4, gpu_free=free)
    chosen = Pack().place(Request(16), view)
    assert sorted({int(view.gpu_host[g]) for g in chosen}) == [0, 4]
