"""EMATeacherHook: mmdet's MeanTeacherHook(skip_buffer=False) with a fused update, checked against the formula.

The teacher is recomputed here in float64 from the student's states, independently of the hook:
``t_0 = s_0`` at iteration 0 of a fresh run, then ``t = decay * t + (1 - decay) * s`` for the float tensors
(parameters and BN running statistics) at every ``interval``-th iteration, integer buffers copied.
"""
from types import SimpleNamespace

import pytest
import torch
from mmdet.engine.hooks import MeanTeacherHook
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

import mtssl_mm  # noqa: F401
from mtssl_mm.engine import EMATeacherHook


def tiny_net():
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2),
        nn.BatchNorm1d(2))


class ToyPair(BaseModel):
    """A student and a teacher of the same structure, initialised differently; the loss sees the student only."""

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.student, self.teacher = tiny_net(), tiny_net()
        self.teacher.requires_grad_(False)

    def forward(self, inputs, data_samples=None, mode='loss'):
        return dict(loss=self.student(inputs).pow(2).mean())


def state(net):
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def student_step(model, g):
    """What a training iteration does to the student: parameters move, BN statistics and counters update."""
    with torch.no_grad():
        for p in model.student.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
        model.student.train()(torch.randn(4, 3, 8, 8, generator=g))


def ema_step(expected, student, decay):
    """The independent formula, in float64; integer buffers take the student's value."""
    return {
        k: decay * t + (1 - decay) * student[k].double() if t.is_floating_point() else student[k].clone()
        for k, t in expected.items()
    }


def assert_teacher_is(model, expected):
    got = state(model.teacher)
    assert got.keys() == expected.keys()
    for k, want in expected.items():
        if want.is_floating_point():
            torch.testing.assert_close(got[k].double(), want, rtol=1e-6, atol=1e-6, msg=k)
        else:
            assert torch.equal(got[k], want), k


def test_is_mmdets_mean_teacher_hook_with_decay_mapped_to_momentum():
    hook = HOOKS.build(dict(type='EMATeacherHook', decay=0.99))
    assert isinstance(hook, EMATeacherHook) and isinstance(hook, MeanTeacherHook)
    assert hook.decay == 0.99 and hook.momentum == 1 - 0.99 and hook.skip_buffers is False and hook.interval == 1
    assert hook.priority == 'ABOVE_NORMAL' and EMATeacherHook.update is EMATeacherHook.momentum_update
    assert HOOKS.build(dict(type='EMATeacherHook', decay=0.9, interval=3)).interval == 3
    for bad in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=r'decay must be in \(0, 1\)'):
            EMATeacherHook(decay=bad)


@pytest.mark.parametrize('interval', [1, 2])
def test_update_follows_the_formula_for_parameters_and_bn_buffers(interval):
    decay = 0.9
    model, g = ToyPair(), torch.Generator().manual_seed(1)
    student_step(model, g)  # the student's BN statistics and counters differ from the teacher's
    hook = EMATeacherHook(decay=decay, interval=interval)
    runner = SimpleNamespace(model=model, iter=0)
    hook.before_train(runner)  # fresh run: the teacher becomes the student
    teacher, student = state(model.teacher), state(model.student)
    assert all(torch.equal(teacher[k], student[k]) for k in student)
    expected = {k: v.double() if v.is_floating_point() else v for k, v in teacher.items()}
    updates = 0
    for it in range(6):
        before = state(model.teacher)
        student_step(model, g)
        runner.iter = it  # the runner's iteration during after_train_iter: the one just done
        hook.after_train_iter(runner, batch_idx=it)
        if (it + 1) % interval == 0:
            expected = ema_step(expected, state(model.student), decay)
            updates += 1
        else:
            assert all(torch.equal(v, before[k]) for k, v in state(model.teacher).items())
        assert_teacher_is(model, expected)
    assert updates == 6 // interval
    bn = model.teacher[1]
    assert bn.num_batches_tracked.item() == model.student[1].num_batches_tracked.item() == 1 + 6 // interval * interval
    assert not torch.allclose(bn.running_mean, model.student[1].running_mean)  # averaged, not copied


def test_floats_as_mmdets_own_update_integer_buffers_copied():
    """The same numbers as ``MeanTeacherHook(skip_buffer=False)`` up to float rounding (lerp vs mul/add); mmdet's
    leaves ``num_batches_tracked`` at its initial value, this one copies it."""
    ours, theirs = ToyPair(), ToyPair()
    hooks = EMATeacherHook(decay=0.99), MeanTeacherHook(momentum=0.01, skip_buffer=False)
    for model, hook in zip((ours, theirs), hooks):
        g = torch.Generator().manual_seed(2)
        student_step(model, g)
        hook.before_train(SimpleNamespace(model=model, iter=0))
        for it in range(4):
            student_step(model, g)
            hook.after_train_iter(SimpleNamespace(model=model, iter=it), batch_idx=it)
    a, b = state(ours.teacher), state(theirs.teacher)
    for k in a:
        if a[k].is_floating_point():
            torch.testing.assert_close(a[k], b[k], rtol=1e-6, atol=1e-7, msg=k)
    assert ours.teacher[1].num_batches_tracked.item() == ours.student[1].num_batches_tracked.item() == 5
    assert theirs.teacher[1].num_batches_tracked.item() == 0  # mmdet's skips integer buffers, its first copy too


def test_resumed_run_keeps_the_teacher_and_the_model_must_have_one():
    model = ToyPair()
    student_step(model, torch.Generator().manual_seed(3))
    hook = EMATeacherHook()
    teacher = state(model.teacher)
    hook.before_train(SimpleNamespace(model=model, iter=3))  # resumed: the teacher comes from the checkpoint
    assert all(torch.equal(v, teacher[k]) for k, v in state(model.teacher).items())
    with pytest.raises(AssertionError):  # mmdet's check of model.teacher / model.student
        hook.before_train(SimpleNamespace(model=nn.Linear(2, 2), iter=0))


class ToyDataset(Dataset):
    inputs = torch.randn(12, 3, 8, 8, generator=torch.Generator().manual_seed(4))

    def __len__(self):
        return len(self.inputs)

    def __getitem__(self, idx):
        return dict(inputs=self.inputs[idx])


class StudentRecorder(Hook):
    priority = 'LOWEST'  # after the optimizer step and after EMATeacherHook

    def __init__(self):
        self.states = []

    def before_train(self, runner):
        self.states.append(state(runner.model.student))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.states.append(state(runner.model.student))


def train(work_dir, max_epochs, resume_from=None):
    runner = Runner(
        model=ToyPair(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=ToyDataset(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=4,
            num_workers=0,
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        custom_hooks=[dict(type='EMATeacherHook', decay=0.9)],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        load_from=resume_from,
        resume=resume_from is not None,
        default_scope='mmdet')
    recorder = StudentRecorder()
    runner.register_hook(recorder)
    runner.train()
    return runner.model, recorder.states


def test_real_runner_two_epochs_and_resume_bit_exact(tmp_path):
    model, students = train(tmp_path / 'full', max_epochs=2)
    assert len(students) == 1 + 6  # before training, then 2 epochs of 3 iterations
    expected = {k: v.double() if v.is_floating_point() else v for k, v in students[0].items()}
    for s in students[1:]:
        expected = ema_step(expected, s, 0.9)
    assert_teacher_is(model, expected)
    _, _ = train(tmp_path / 'first', max_epochs=1)
    resumed, students = train(tmp_path / 'resumed', max_epochs=2, resume_from=str(tmp_path / 'first' / 'epoch_1.pth'))
    assert len(students) == 1 + 3
    for name, net in (('teacher', model.teacher), ('student', model.student)):
        for k, v in state(net).items():
            assert torch.equal(state(getattr(resumed, name))[k], v), (name, k)  # bit-exact


def test_before_train_drops_tensor_lists_collected_earlier():
    """Lists collected before training (e.g. by a direct ``update``) are not reused for the runner's model."""
    hook, early, model = EMATeacherHook(), ToyPair(seed=5), ToyPair(seed=6)
    hook.update(early, 0.5)
    hook.before_train(SimpleNamespace(model=model, iter=0))
    assert all(torch.equal(v, state(model.student)[k]) for k, v in state(model.teacher).items())
