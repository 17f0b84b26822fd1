"""``certify retrain``: retrain a model with a stability penalty until the checker certifies it.

Pipeline: import the model (ONNX or state dict) → torch module (:func:`from_canonical`) → truncated-BPTT
training with the δISS (or ISS) penalty on the differentiable residuals (:mod:`certify.train.residuals`)
→ export ``OUTDIR/model.onnx`` + ``OUTDIR/model.pt`` (+ sidecar) → ``certify.api.check`` on the exported
ONNX file (the same checker as ``certify check``; the training residuals only guide) → ``OUTDIR/report.json``
(the checker's report) and ``OUTDIR/retrain.json`` (metrics before/after, epochs, residuals).
If the checker does not certify, training continues with a doubled penalty weight (``--rounds`` times).
Data format: docs/retrain.md.  Exit codes: 0 certified, 1 not certified, 3 bad input.

Targets: ``diss``/``iss`` — GRU/LSTM stacks with the Bonassi residuals (:mod:`certify.train.residuals`),
Elman/LP-GRNN/SS-NN/one-step affine cells with the contraction residuals
(:mod:`certify.train.contraction`), judged by ``check --method diss``; ``lmi`` — affine cells only, the
anchored LMI penalty of :mod:`certify.train.lmi_penalty`, epochs selected by a validated LMI certificate,
judged by ``check --method lmi``; ``loop`` (``--plant``/``--loop``) — affine cells only, the closed loop's
anchored LMI penalty of :mod:`certify.train.loop_penalty`, judged by ``check --plant/--loop``.
Which architectures are supported, and which of them are gated, is read from the layer-kind registry
(:mod:`certify.networks.kinds`).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

from certify.errors import CertifyError, InvalidInputError, UnsupportedModelError
from certify.results import ExitCode

__all__ = ["EXIT_CODES", "TARGETS", "add_arguments", "check_arguments", "load_data", "resolve_target", "run"]

#: The ``--target`` choices.
TARGETS = ("diss", "iss", "lmi", "loop")


#: The exit codes of ``certify retrain`` (its ``--help`` epilog).
EXIT_CODES = """exit codes:
  0    certified      the written model is certified by the checker (preserve: and within --max-fit-drop)
  1    not_certified  no certified model, or (preserve) only one that loses more than --max-fit-drop
                      FIT points: it is kept in OUTDIR/rejected/, not written as the result
  2    usage error    bad command line
  3    invalid_input  the model, data, options or checkpoint cannot be used
  5    internal_error a bug in certify
  130  interrupted    Ctrl-C (SIGINT): the best certified model so far and retrain.json are in OUTDIR;
                      continue with --resume (preserve)"""


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``certify retrain`` arguments (and its exit-code epilog) to ``parser``.

    >>> p = add_arguments(argparse.ArgumentParser())
    >>> p.parse_args(["m.onnx", "--data", "d.npz", "-o", "out"]).target is None  # resolved by resolve_target
    True
    """
    parser.epilog = EXIT_CODES
    parser.add_argument("model", help="model file (ONNX or PyTorch state dict + sidecar)")
    parser.add_argument("--data", required=True,
                        help="npz with u (T, m), y (T, p) [u_val, y_val, u_test, y_test] (docs/retrain.md)")
    parser.add_argument("-o", "--output", required=True,
                        help="output folder: model.onnx, model.pt (+ sidecar), report.json, retrain.json, "
                             "checkpoint.pt")
    parser.add_argument("--target", choices=TARGETS, default=None,
                        help="property to enforce: diss/iss (closed-form residuals of the network), lmi (the "
                             "network's LMI), loop (the closed loop's LMI with --plant or --loop, judged by "
                             "`certify check MODEL --plant/--loop`); lmi and loop: affine cells only (Elman, "
                             "LP-GRNN, SS-NN, one-step cell graphs) and always the penalty strategy. Default: "
                             "loop when --plant or --loop is given, else diss")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--plant", metavar="NAME", default=None,
                       help="--target loop: close the loop around this built-in plant (`certify plants`)")
    where.add_argument("--loop", metavar="FILE", default=None,
                       help="--target loop: close the loop a loop file describes (docs/loops.md)")
    parser.add_argument("--strategy", choices=("preserve", "penalty"), default="preserve",
                        help="preserve: project the trained weights onto the certified set, then fine-tune "
                             "inside it with distillation from the original model; penalty: train with a "
                             "penalty on the residuals, doubling its weight each round")
    parser.add_argument("--epochs", type=int, default=200, help="epochs (of fine-tuning, or per penalty round)")
    parser.add_argument("--lr", type=float, default=None,
                        help="Adam learning rate (default: preserve 3e-2, the start of a cosine decay to lr/10 on "
                             "each fine-tuning track; --into and penalty 1e-2)")
    parser.add_argument("--max-fit-drop", type=float, default=5.0, metavar="POINTS",
                        help="preserve: largest accepted loss of validation FIT (mean over outputs, points); a "
                             "certified model that loses more is written to OUTDIR/rejected/, not as the result")
    parser.add_argument("--distill", type=float, default=1.0,
                        help="preserve: weight of the original model's outputs as extra targets (0: data only)")
    parser.add_argument("--project-steps", type=int, default=400,
                        help="preserve: augmented-Lagrangian steps of the projection before falling back to "
                             "scaling the recurrent weights")
    parser.add_argument("--barrier", type=float, default=None,
                        help="preserve: weight μ of the log barrier −μΣlog(−g) of the interior track (the first "
                             "half of the epochs; the second half restarts from the projected weights without "
                             "it); 0: the boundary track only (default: 1e-4, with --into 0)")
    parser.add_argument("--resume", action="store_true",
                        help="preserve: continue an interrupted or finished run from OUTDIR/checkpoint.pt "
                             "(same MODEL and DATA; raise --epochs to train longer)")
    parser.add_argument("--into", choices=("lpgrnn", "grssnn"), default=None,
                        help="preserve: distil MODEL into a new network of this architecture (an LP-GRNN with a "
                             "linear bypass, or a gR-SS-NN; linear part from least squares on DATA) until it "
                             "certifies; written as a one-step cell graph")
    parser.add_argument("--hidden", type=int, default=None,
                        help="--into: LP-GRNN states / gR-SS-NN neurons (default: MODEL's hidden size, else 8)")
    parser.add_argument("--penalty-weight", type=float, default=0.1,
                        help="penalty: weight w of the penalty w·Σρ(ν)/L in the first round")
    parser.add_argument("--rounds", type=int, default=3,
                        help="penalty: training rounds (the penalty weight doubles each round)")
    parser.add_argument("--clearance", type=float, default=0.05,
                        help="ε: the residuals are driven below −ε (margin for float32 rounding)")
    parser.add_argument("--seq-len", type=int, default=100, help="length of the training sub-sequences")
    parser.add_argument("--batch-size", type=int, default=16, help="sub-sequences per minibatch")
    parser.add_argument("--washout", type=int, default=10,
                        help="leading samples of every sequence left out of losses and metrics")
    parser.add_argument("--seed", type=int, default=0, help="seed of the minibatch sampling and initialisation")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="torch device (auto: cuda when available)")
    parser.add_argument("--solver", default=None,
                        help="conic solver for --target lmi and loop (default: automatic)")
    parser.add_argument("--log-every", type=int, default=10, metavar="N",
                        help="without a terminal (CI logs): one progress line every N epochs (0: none)")
    return parser


def _arr(d: Any, key: str, path: str) -> np.ndarray:
    import numpy as np

    raw = np.asarray(d[key])
    if raw.dtype.kind not in "biuf":
        raise InvalidInputError(f"{path}: array {key!r} must hold real numbers, got dtype {raw.dtype}.")
    a = raw.astype(float)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] < 2 or not np.all(np.isfinite(a)):
        raise InvalidInputError(f"{path}: array {key!r} must be a finite (T, n) matrix, got shape {a.shape}.")
    return a


def load_data(path: str, m: int, p: int) -> dict[str, np.ndarray]:
    import numpy as np  # noqa: F811

    """Read the npz: ``train``/``val``/``test`` pairs (keys ``u``, ``y`` …) checked against ``m`` inputs, ``p`` outputs.

    Missing ``u_test``/``y_test``: the last 25 % of ``u``/``y``; missing ``u_val``/``y_val``: the last 20 % of
    what remains for training.
    """
    from certify.schemas.files import check_regular_file

    check_regular_file(path, "data file")  # never open a FIFO or a device (np.load would block or never end)
    try:
        with np.load(path, allow_pickle=False) as d:
            if not hasattr(d, "files"):
                raise InvalidInputError(f"{path}: expected an .npz archive with arrays 'u' and 'y', got a single array.")
            if "u" not in d or "y" not in d:
                raise InvalidInputError(f"{path}: the npz needs arrays 'u' (T, m) and 'y' (T, p).")
            out = {k: _arr(d, k, path) for k in ("u", "y", "u_val", "y_val", "u_test", "y_test") if k in d}
    except InvalidInputError:
        raise
    except MemoryError:
        raise InvalidInputError(f"cannot read data file {path}: its arrays do not fit in memory.") from None
    except Exception as exc:  # not an npz, truncated, pickled objects, bad headers
        raise InvalidInputError(f"cannot read data file {path}: {exc}") from None
    for k, a in out.items():
        want = m if k.startswith("u") else p
        if a.shape[1] != want:
            raise InvalidInputError(f"{path}: {k!r} has {a.shape[1]} columns, the model has {want}.")
    for s in ("", "_val", "_test"):
        if (f"u{s}" in out) != (f"y{s}" in out) or (f"u{s}" in out and out[f"u{s}"].shape[0] != out[f"y{s}"].shape[0]):
            raise InvalidInputError(f"{path}: u{s} and y{s} must both be present with the same length.")
    u, y = out["u"], out["y"]
    if "u_test" not in out:
        cut = int(0.75 * len(u))
        out["u_test"], out["y_test"], u, y = u[cut:], y[cut:], u[:cut], y[:cut]
    if "u_val" not in out:
        cut = int(0.8 * len(u))
        out["u_val"], out["y_val"], u, y = u[cut:], y[cut:], u[:cut], y[:cut]
    if min(len(u), len(out["u_val"]), len(out["u_test"])) < 10:
        raise InvalidInputError(f"{path}: too few samples for training/validation/test splits.")
    out["u"], out["y"] = u, y
    return out


def _metadata(info: Any) -> dict[str, str]:
    meta: dict[str, str] = {}
    if info.input_range is not None:
        meta["certify.input_range"] = json.dumps({"low": info.input_range.low.tolist(),
                                                  "high": info.input_range.high.tolist()})
    for key, s in (("input_scaling", info.input_scaling), ("output_scaling", info.output_scaling)):
        if s is not None:
            meta[f"certify.{key}"] = json.dumps({"raw_low": s.raw_low.tolist(), "raw_high": s.raw_high.tolist(),
                                                 "net_low": s.net_low, "net_high": s.net_high})
    for key in ("input_names", "output_names"):
        if getattr(info, key):
            meta[f"certify.{key}"] = json.dumps(list(getattr(info, key)))
    return meta




def _export(module: Any, path: str, args: argparse.Namespace, info: Any) -> None:
    """Fused ONNX ops for GRU/LSTM/Elman stacks, a one-step cell graph for LP-GRNN, SS-NN and affine cells."""
    from certify.train.modules import export_onnx, export_step_onnx

    if getattr(module, "kind", "") in ("gru", "lstm", "rnn"):
        export_onnx(module, path, seq_len=max(2, args.seq_len), metadata=_metadata(info))
    else:
        export_step_onnx(module, path, metadata=_metadata(info))


_RESULT_FILES = ("model.onnx", "model.pt", "model.pt.certify.json", "report.json")
_OUTPUTS = _RESULT_FILES + ("retrain.json", "checkpoint.pt") + tuple(os.path.join("rejected", f) for f in _RESULT_FILES)


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse option values and paths that cannot work, before anything is read or written.

    Raises
    ------
    InvalidInputError
        A non-positive ``--seq-len``/``--batch-size``/``--epochs``/``--rounds``, a negative ``--washout``,
        a non-finite or non-positive ``--lr``, an ``-o`` that is an existing file, or an output that would
        overwrite an input.

    Examples
    --------
    >>> ns = add_arguments(argparse.ArgumentParser()).parse_args(["m.onnx", "--data", "d.npz", "-o", "out",
    ...                                                           "--seq-len", "0"])
    >>> check_arguments(ns)
    Traceback (most recent call last):
    ...
    certify.errors.InvalidInputError: --seq-len must be at least 1, got 0.
    """
    resolve_target(args)
    # defaults measured in docs/retrain.md ("Measured"): preserve on the same architecture 3e-2 and two tracks;
    # --into (a fresh student) and the penalty strategy 1e-2 and, for --into, the boundary track only
    same_arch = getattr(args, "strategy", "preserve") == "preserve" and args.target not in ("lmi", "loop") \
        and getattr(args, "into", None) is None
    if getattr(args, "lr", None) is None:
        args.lr = 3e-2 if same_arch else 1e-2
    if getattr(args, "barrier", None) is None:
        args.barrier = 1e-4 if same_arch else 0.0
    for opt, value, low in (("--seq-len", args.seq_len, 1), ("--batch-size", args.batch_size, 1),
                            ("--epochs", args.epochs, 1), ("--rounds", args.rounds, 1), ("--washout", args.washout, 0),
                            ("--project-steps", getattr(args, "project_steps", 0), 0),
                            ("--log-every", getattr(args, "log_every", 0), 0)):
        if value < low:
            raise InvalidInputError(f"{opt} must be at least {low}, got {value}.")
    for opt, value in (("--lr", args.lr), ("--penalty-weight", args.penalty_weight), ("--clearance", args.clearance),
                       ("--distill", getattr(args, "distill", 0.0)), ("--barrier", getattr(args, "barrier", 0.0)),
                       ("--max-fit-drop", getattr(args, "max_fit_drop", 0.0))):
        if not math.isfinite(value) or value < 0 or (opt == "--lr" and value == 0):
            raise InvalidInputError(f"{opt} must be a finite {'positive' if opt == '--lr' else 'non-negative'} "
                                    f"number, got {value!r}.")
    if not args.clearance < 1:
        raise InvalidInputError(f"--clearance must be below 1 (residuals are at least −1), got {args.clearance!r}.")
    out = args.output
    if getattr(args, "into", None) is not None and (getattr(args, "strategy", "preserve") != "preserve"
                                                    or args.target in ("lmi", "loop")):
        raise InvalidInputError("--into distils with --strategy preserve and --target diss or iss; check the "
                                "written model with `certify check --method lmi` (or a loop) afterwards, or "
                                "retrain it with --target loop --plant NAME.")
    if getattr(args, "hidden", None) is not None and args.hidden < 1:
        raise InvalidInputError(f"--hidden must be at least 1, got {args.hidden}.")
    if getattr(args, "resume", False):
        if getattr(args, "strategy", "preserve") != "preserve" or args.target in ("lmi", "loop"):
            raise InvalidInputError("--resume continues a --strategy preserve run (targets diss/iss).")
        if not os.path.isfile(os.path.join(out, "checkpoint.pt")):
            raise InvalidInputError(f"--resume: no checkpoint.pt in {out}; start without --resume.")
    if os.path.lexists(out) and not os.path.isdir(out):
        raise InvalidInputError(f"-o {out} exists and is not a directory; give a new or existing output folder.")
    inputs = [args.model, args.model + ".certify.json", args.model + ".data", args.data]
    for name in _OUTPUTS:
        target = os.path.join(out, name)
        for src in inputs:
            if os.path.lexists(src) and any(os.path.lexists(t) and _same_file(t, src)
                                            for t in (target, os.path.realpath(target))):
                raise InvalidInputError(f"refusing to write {target}: it is an input of this command ({src}) and "
                                        "would be destroyed. Choose another output folder (-o).")


def resolve_target(args: argparse.Namespace) -> str:
    """Fill in the default ``--target`` (``loop`` with ``--plant``/``--loop``, else ``diss``) and refuse
    a loop without a loop or a loop option with another target; returns the target.

    >>> ns = add_arguments(argparse.ArgumentParser()).parse_args(["m", "--data", "d", "-o", "o", "--plant", "boiler"])
    >>> resolve_target(ns)
    'loop'
    """
    where = getattr(args, "plant", None) or getattr(args, "loop", None)
    if getattr(args, "target", None) is None:
        args.target = "loop" if where else "diss"
    if args.target == "loop" and not where:
        raise InvalidInputError("--target loop needs the loop: --plant NAME (a built-in plant, `certify plants`) "
                                "or --loop FILE (docs/loops.md).")
    if args.target != "loop" and where:
        raise InvalidInputError(f"--plant/--loop close a loop around the model: they go with --target loop, not "
                                f"--target {args.target}.")
    return str(args.target)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def run(args: argparse.Namespace) -> int:
    """Run ``certify retrain``; returns the exit code (0 certified, 1 not, 3 bad input)."""
    try:
        check_arguments(args)
        return _run(args)
    except CertifyError as exc:
        print(f"certify retrain: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "torch":
            raise
        print("certify retrain: error: retraining needs PyTorch, which is not installed; install the torch extra: "
              "pip install 'certify[torch]'", file=sys.stderr)
        return int(ExitCode.INVALID_INPUT)
    except MemoryError:
        print("certify retrain: error: the model or data needs more memory than is available.", file=sys.stderr)
        return int(ExitCode.INVALID_INPUT)
    except KeyboardInterrupt:  # a second Ctrl-C: every file on disk is complete (atomic writes)
        print("certify retrain: aborted", file=sys.stderr)
        return 130
    except ValueError as exc:  # bad option values (device, sizes)
        print(f"certify retrain: {exc}", file=sys.stderr)
        return int(ExitCode.INVALID_INPUT)


def _replace_into(final: str, write: Any) -> None:
    """Call ``write(tmp)`` for a temporary path beside ``final``, then rename it to ``final`` (atomic)."""
    import tempfile

    folder, base = os.path.split(final)
    stem, ext = os.path.splitext(base)
    fd, tmp = tempfile.mkstemp(dir=folder or ".", prefix=f".{stem}.", suffix=ext)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _run(args: argparse.Namespace) -> int:
    import torch

    from certify.importers import load_model
    from certify.networks.kinds import KINDS
    from certify.train.metrics import metrics
    from certify.train.modules import from_canonical, save_state_dict
    from certify.train.residuals import gated_residuals
    from certify.train.trainer import simulate

    net = load_model(args.model)
    arch = net.architecture
    row = KINDS.get(arch)  # the layer-kind registry: torch twin, gated or affine
    if row is None or row.torch_module is None:
        raise UnsupportedModelError(f"retrain supports GRU, LSTM, Elman, LP-GRNN and SS-NN networks and one-step "
                                    f"affine cell graphs; this model is {arch!r}.")
    if args.target == "lmi" and row.gated:
        raise UnsupportedModelError("--target lmi needs an affine cell (Elman, LP-GRNN, SS-NN, one-step cell "
                                    "graph): GRU/LSTM cells have no exact SNOF. Use --target diss.")
    if args.target == "loop" and row.gated:
        where = f"--plant {args.plant}" if args.plant else f"--loop {args.loop}"
        raise UnsupportedModelError(
            f"--target loop needs an affine network (Elman with a bypass, LP-GRNN, SS-NN, one-step cell graph): "
            f"{arch.upper()} cells have no exact SNOF, so the closed-loop LMI does not apply to them (Hilgert & "
            f"Schwung 2025, Prop. IV.2). Distil the model first: certify retrain {args.model} --data {args.data} "
            f"-o STUDENT --into lpgrnn (or --into grssnn), then certify retrain STUDENT/model.onnx --data "
            f"{args.data} -o OUT {where}.")
    module: Any = from_canonical(net)  # a module of certify.train.modules (n_in, sidecar, …)
    info = net.info
    p = net.n_outputs
    data = load_data(args.data, module.n_in, p)
    if info.input_scaling is not None:  # data in plant units → network units
        for k in ("u", "u_val", "u_test"):
            data[k] = info.input_scaling.to_net(data[k])
    if info.output_scaling is not None:
        for k in ("y", "y_val", "y_test"):
            data[k] = info.output_scaling.to_net(data[k])
    to_raw = info.output_scaling.to_raw if info.output_scaling is not None else (lambda a: a)
    w = args.washout

    def test_metrics() -> dict[str, list[float]]:
        return metrics(to_raw(data["y_test"][w:]), to_raw(simulate(module, data["u_test"])[w:]))

    before = test_metrics()
    target = args.target
    select = None
    if row.gated:
        u_bar = torch.as_tensor(info.input_range.abs_bound) if info.input_range is not None else None

        def res(m):
            return gated_residuals(m, None if u_bar is None else u_bar.to(next(m.parameters()).device)).of(target)
        method = "diss"
    elif target == "lmi":
        from certify.train.lmi_penalty import LMITarget

        lmi_target = LMITarget(solver=args.solver)
        res, select, method = lmi_target.residuals, lmi_target.select, "lmi"
    elif target == "loop":
        from certify.loop.check import resolve_loop
        from certify.train.loop_penalty import LoopTarget

        if getattr(module, "kind", "") == "rnn" and module.head is not None and module.bypass is None:
            module.add_bypass()  # a zero linear path the training may grow (a loop needs one; Schoukens 2021)
        loop_target = LoopTarget(net, resolve_loop(args.plant, args.loop), solver=args.solver)
        loop_target.select(module)  # the first anchor: the current weights' certificate or LMI optimum
        res, select, method = loop_target.residuals, loop_target.select, "lmi"
    else:
        from certify.train.contraction import affine_residuals

        def res(m):
            return affine_residuals(m).of(target)
        method = "diss"

    try:
        os.makedirs(args.output, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"cannot create the output folder {args.output}: {exc.strerror or exc}") from None
    side = {k: v for k, v in {
        "input_names": list(info.input_names) or None, "output_names": list(info.output_names) or None,
        "input_range": None if info.input_range is None else {"low": info.input_range.low.tolist(),
                                                              "high": info.input_range.high.tolist()},
    }.items() if v is not None}
    teacher = None
    if getattr(args, "into", None) is not None:
        from certify.train.contraction import affine_residuals
        from certify.train.students import build_student

        teacher = module
        hidden = args.hidden or getattr(teacher, "hidden", None) or 8
        module = build_student(args.into, data["u"], data["y"], hidden, seed=args.seed)
        arch = f"{arch}->{args.into}"

        def res(m):
            return affine_residuals(m).of(target)
        method = "diss"
    if args.strategy == "preserve" and target not in ("lmi", "loop"):
        from certify.train.session import run_preserve

        def write_pt(m: Any, pt_path: str) -> None:
            def write(tmp: str) -> None:
                tmp_side = save_state_dict(m, tmp, **side)[1]
                os.replace(tmp_side, pt_path + ".certify.json")
            _replace_into(pt_path, write)

        return run_preserve({"args": args, "module": module, "data": data, "residuals": res, "method": method,
                             "info": info, "arch": arch, "before": before, "to_raw": to_raw, "teacher": teacher,
                             "export": lambda m, tmp: _export(m, tmp, args, info), "replace_into": _replace_into,
                             "write_pt": write_pt})
    return _run_penalty(args, module, data, res, select, method, info, arch, target, before, test_metrics, side)


def _run_penalty(args: argparse.Namespace, module: Any, data: dict, res: Any, select: Any, method: str, info: Any,
                 arch: str, target: str, before: dict, test_metrics: Any, side: dict) -> int:
    """``--strategy penalty`` (and ``--target lmi``): penalised training rounds, the weight doubling each."""
    from certify.api import check
    from certify.cli import write_atomic
    from certify.train.modules import save_state_dict
    from certify.train.penalties import Penalty
    from certify.train.session import EXIT_INTERRUPTED, Interrupt
    from certify.train.trainer import TrainConfig, train

    w = args.washout
    onnx_path = os.path.join(args.output, "model.onnx")
    weight, report, result, rounds, exported = args.penalty_weight, None, None, [], None
    loop_kw = {"plant": args.plant, "loop": args.loop} if target == "loop" else {}
    stop = Interrupt()
    with stop:
        for rnd in range(args.rounds):
            if stop():
                break
            cfg = TrainConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seq_len=args.seq_len,
                              washout=w, seed=args.seed + rnd, device=args.device,
                              desc=f"round {rnd + 1}/{args.rounds} epoch", log_every=args.log_every)
            result = train(module, data["u"], data["y"], data["u_val"], data["y_val"], cfg, residuals=res,
                           penalty=Penalty(weight=weight, eps=args.clearance), select=select, stop=stop)
            module = module.cpu().float()
            rounds.append({"round": rnd, "penalty_weight": weight, "best_epoch": result.best_epoch,
                           "worst_residual": result.worst_residual, "epochs_run": len(result.history),
                           "history": [{k: (v if not isinstance(v, float) or math.isfinite(v) else None)
                                        for k, v in r.__dict__.items()} for r in result.history]})
            if result.best_epoch is not None:
                _replace_into(onnx_path, lambda tmp, module=module: _export(module, tmp, args, info))
                exported = copy.deepcopy(module.state_dict())
                report = check(onnx_path, method=method, solver=args.solver, search=False, **loop_kw)
                if report.exit_code is ExitCode.CERTIFIED:
                    break
            weight *= 2.0
    # every file written below must hold the weights that model.onnx and report.json describe
    if exported is not None:
        module.load_state_dict(exported)
    else:  # no epoch qualified: still write the (uncertified) last weights and check them
        _replace_into(onnx_path, lambda tmp, module=module: _export(module, tmp, args, info))
        report = check(onnx_path, method=method, solver=args.solver, search=False, **loop_kw)
    assert report is not None  # checked with the exported weights, or just above
    state_dict = None
    if hasattr(module, "sidecar") and getattr(module, "bypass", None) is None:  # cells, bypass heads: ONNX only
        pt_path = os.path.join(args.output, "model.pt")

        def write_pt(tmp: str) -> None:
            tmp_side = save_state_dict(module, tmp, **side)[1]
            os.replace(tmp_side, pt_path + ".certify.json")

        _replace_into(pt_path, write_pt)
        state_dict = pt_path
    write_atomic(os.path.join(args.output, "report.json"), report.to_json())
    after = test_metrics()
    worst = float(select(module)) if select is not None else max(float(v.detach()) for v in res(module))
    worst_json = worst if math.isfinite(worst) else None  # strict JSON has no Infinity
    summary = {"model": os.fspath(args.model), "architecture": arch, "target": target, "method": method,
               "verdict": report.verdict.value, "onnx": onnx_path, "state_dict": state_dict,
               "strategy": "penalty", "interrupted": stop(), **({"plant": args.plant, "loop": args.loop}
                                                                if target == "loop" else {}),
               "rounds": rounds, "worst_residual": worst_json, "test_before": before, "test_after": after}
    write_atomic(os.path.join(args.output, "retrain.json"), json.dumps(summary, indent=2))
    fmt = lambda m: ", ".join(f"{k.upper()} " + "/".join(f"{v:.4g}" for v in m[k]) for k in ("fit", "rmse", "bfr"))
    print(f"test before: {fmt(before)}")
    print(f"test after:  {fmt(after)}")
    print(f"worst training residual ν = {worst:.4g}; checker verdict: {report.verdict.value} "
          f"(report: {os.path.join(args.output, 'report.json')})")
    if stop():
        print(f"certify retrain: interrupted (exit {EXIT_INTERRUPTED})", file=sys.stderr)
        return EXIT_INTERRUPTED
    if report.exit_code is not ExitCode.CERTIFIED:
        why = next((c.message for c in report.checks if c.scope == "model" and not c.proved), None)
        print("certify retrain: the checker does not certify the retrained model" + (f": {why}" if why else "")
              + (" Try more --rounds or --epochs, a larger --penalty-weight, or another architecture (--into "
                 "lpgrnn|grssnn with a linear bypass)." if target in ("lmi", "loop") else ""), file=sys.stderr)
    return 0 if report.exit_code is ExitCode.CERTIFIED else 1


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m certify.train.retrain``)."""
    parser = argparse.ArgumentParser(prog="certify retrain", formatter_class=argparse.RawDescriptionHelpFormatter)
    return run(add_arguments(parser).parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
