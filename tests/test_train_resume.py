"""Training checkpoints: a run interrupted and resumed from its checkpoint gives exactly the uninterrupted run
(weights, optimiser, random windows, best epoch, history); bad checkpoint files are refused clearly."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from certify.errors import InvalidInputError  # noqa: E402
from certify.train.modules import GRUNet  # noqa: E402
from certify.train.penalties import Penalty  # noqa: E402
from certify.train.residuals import gated_residuals  # noqa: E402
from certify.train.trainer import TrainConfig, train  # noqa: E402


def _data():
    rng = np.random.default_rng(0)
    u = rng.uniform(-1, 1, (400, 2))
    y = np.zeros((400, 1))
    for k in range(1, 400):
        y[k] = 0.8 * y[k - 1] + 0.2 * np.tanh(u[k - 1, :1] - 0.5 * u[k - 1, 1:])
    return u, y


def _run(cfg, stop=None, resume=False):
    torch.manual_seed(0)
    m = GRUNet(2, 3, n_out=1)
    u, y = _data()
    res = train(m, u[:300], y[:300], u[300:], y[300:], cfg, residuals=lambda mm: gated_residuals(mm).diss,
                penalty=Penalty(weight=0.05, eps=0.05), stop=stop, resume=resume)
    return m, res


def test_interrupted_and_resumed_run_equals_the_uninterrupted_one(tmp_path):
    base = dict(epochs=8, seq_len=40, batches_per_epoch=2, device="cpu", progress=False, lr=3e-2,
                require_certified=False)
    ref_m, ref = _run(TrainConfig(**base))
    ck = str(tmp_path / "ck.pt")
    calls = {"n": 0}

    def stop_after_five() -> bool:      # an interruption after epoch 5 (like Ctrl-C through `stop`)
        calls["n"] += 1
        return calls["n"] == 5

    cfg = TrainConfig(**base, checkpoint=ck, checkpoint_every=3)
    _, part = _run(cfg, stop=stop_after_five)
    assert len(part.history) == 5
    m2, res = _run(cfg, resume=True)       # a fresh module: everything comes from the checkpoint
    assert [r.epoch for r in res.history] == list(range(8))
    for a, b in zip(res.history, ref.history):
        assert a.loss == pytest.approx(b.loss, rel=1e-6, abs=1e-9)
        assert a.val_fit == pytest.approx(b.val_fit, rel=1e-6, abs=1e-6)
    assert res.best_epoch == ref.best_epoch
    for (k, v), (_, w) in zip(m2.state_dict().items(), ref_m.state_dict().items()):
        assert torch.allclose(v, w, rtol=1e-5, atol=1e-7), k


@pytest.mark.filterwarnings("ignore::UserWarning")   # torch's note on the junk file's pickle protocol
def test_resume_refuses_missing_foreign_and_damaged_files(tmp_path):
    base = dict(epochs=2, seq_len=40, batches_per_epoch=1, device="cpu", progress=False)
    with pytest.raises(InvalidInputError, match="no checkpoint"):
        _run(TrainConfig(**base, checkpoint=str(tmp_path / "none.pt")), resume=True)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(InvalidInputError, match="not a training checkpoint"):
        _run(TrainConfig(**base, checkpoint=str(tmp_path / "foreign.pt")), resume=True)
    (tmp_path / "junk.pt").write_bytes(b"\x80\x04not a zip at all")
    with pytest.raises(InvalidInputError, match="not a training checkpoint"):
        _run(TrainConfig(**base, checkpoint=str(tmp_path / "junk.pt")), resume=True)
    with pytest.raises(ValueError, match="checkpoint"):
        _run(TrainConfig(**base), resume=True)
    # a checkpoint of another model (other hidden size) is refused, not a traceback from load_state_dict
    other = str(tmp_path / "other.pt")
    u, y = _data()
    torch.manual_seed(0)
    train(GRUNet(2, 5, n_out=1), u[:300], y[:300], u[300:], y[300:], TrainConfig(**base, checkpoint=other))
    with pytest.raises(InvalidInputError, match="another model"):
        _run(TrainConfig(**base, checkpoint=other), resume=True)
    # a real checkpoint with a part missing or mangled (the format marker intact) is refused too
    own = str(tmp_path / "own.pt")
    _run(TrainConfig(**base, checkpoint=own))
    ck = torch.load(own, weights_only=True)
    for _what, broken in (("missing history", {k: v for k, v in ck.items() if k != "history"}),
                         ("bad history row", {**ck, "history": [[0, 1.0]]}),
                         ("bad generator state", {**ck, "numpy_rng": {"state": 1}})):
        torch.save(broken, tmp_path / "broken.pt")
        with pytest.raises(InvalidInputError, match="incomplete"):
            _run(TrainConfig(**base, checkpoint=str(tmp_path / "broken.pt")), resume=True)


def test_annealed_run_resumed_mid_anneal_equals_the_uninterrupted_one(tmp_path):
    """The learning rate is a function of the epoch alone: stopping inside the cosine and resuming follows it."""
    base = dict(epochs=8, seq_len=40, batches_per_epoch=2, device="cpu", progress=False, lr=3e-2,
                require_certified=False, anneal_epochs=5, anneal_to=0.05)
    ref_m, ref = _run(TrainConfig(**base))
    _, const = _run(TrainConfig(**{**base, "anneal_epochs": 0}))
    assert [r.loss for r in ref.history[:4]] == pytest.approx([r.loss for r in const.history[:4]], rel=1e-6)
    assert ref.history[-1].loss != pytest.approx(const.history[-1].loss, rel=1e-6)   # the schedule acts
    ck = str(tmp_path / "ck.pt")
    calls = {"n": 0}

    def stop_after_six() -> bool:
        calls["n"] += 1
        return calls["n"] == 6

    cfg = TrainConfig(**base, checkpoint=ck)
    _run(cfg, stop=stop_after_six)
    m2, res = _run(cfg, resume=True)
    for a, b in zip(res.history, ref.history):
        assert a.loss == pytest.approx(b.loss, rel=1e-6, abs=1e-9)
    for (k, v), (_, w) in zip(m2.state_dict().items(), ref_m.state_dict().items()):
        assert torch.allclose(v, w, rtol=1e-5, atol=1e-7), k


def test_learning_rate_schedule_shape_and_config_checks():
    from certify.train.trainer import learning_rate

    cfg = TrainConfig(epochs=50, lr=2e-2, anneal_epochs=20, anneal_to=0.01)
    lrs = [learning_rate(cfg, e) for e in range(50)]
    assert lrs[:31] == [2e-2] * 31                       # constant until the anneal starts (epoch 30)
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))     # never increases
    assert lrs[-1] == pytest.approx(2e-4)                # ends at lr · anneal_to
    assert [learning_rate(TrainConfig(epochs=5), e) for e in range(5)] == [1e-2] * 5
    for bad in (dict(epochs=5, anneal_epochs=6), dict(anneal_to=0.0), dict(anneal_to=1.5), dict(anneal_epochs=-1)):
        with pytest.raises(ValueError, match="anneal"):
            TrainConfig(**bad)
