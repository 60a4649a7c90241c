"""The index bookkeeping of a semi-supervised batch (ViewPlan), computed once per batch."""
import torch

from mtssl_mm.models.multitask_semi import ViewPlan


def needed_plan():
    """5 samples: 0 labeled for det+seg, 1 for det, 2 for seg, 3 and 4 for nothing (student_views='needed')."""
    unsup_idx = dict(det=[2, 3, 4], seg=[1, 3, 4])
    return ViewPlan(5, weak_idx=[0, 1, 2], strong_idx=[1, 2, 3, 4], unsup_idx=unsup_idx, union=[1, 2, 3, 4])


def test_rows_positions_and_union_rows():
    plan = needed_plan()
    x = torch.arange(5.)[:, None]
    assert plan.rows(x, [3, 1]).flatten().tolist() == [3., 1.]
    assert plan.rows(x, list(range(5))) is x  # the whole batch: no copy
    assert plan.strong_rows([2, 4]) == [1, 3] and plan.union_positions([1, 4]) == [0, 3]
    strong = torch.arange(4.)[:, None]
    assert plan.union_rows(strong) is strong and plan.union_rows(None) is None


def test_union_rows_picks_the_union_out_of_all_strong_views():
    plan = ViewPlan(4, weak_idx=[0, 1, 2, 3], strong_idx=[0, 1, 2, 3], unsup_idx=dict(det=[1, 3]), union=[1, 3])
    strong = torch.tensor([[10.], [11.], [12.], [13.]])
    assert plan.union_rows(strong).flatten().tolist() == [11., 13.]
    assert plan.strong_rows(plan.unsup_idx['det']) == [1, 3] and plan.union_positions([3]) == [1]
