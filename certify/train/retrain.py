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
``--into`` with ``--plant``/``--loop``: two stages in one run (:func:`_run_into_loop`): the distillation into an
affine student (``OUTDIR/student/``), then ``--target loop`` on the student (``OUTDIR``) unless the student's own
loop is certified already (then the student is the result).
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
                      FIT points: it is kept in OUTDIR/rejected/, not written as the result; --into with
                      --plant/--loop: also when the distillation gives no usable student (the loop stage
                      does not run) or the loop is not certified (the model is kept in OUTDIR/rejected/)
  2    usage error    bad command line
  3    invalid_input  the model, data, options or checkpoint cannot be used
  5    internal_error a bug in certify
  130  interrupted    Ctrl-C (SIGINT): the best certified model so far and retrain.json are in OUTDIR;
                      continue with --resume (preserve, and --into with --plant/--loop)"""


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
                             "checkpoint.pt; --into with --plant/--loop: the distilled student in OUTDIR/student/")
    parser.add_argument("--target", choices=TARGETS, default=None,
                        help="property to enforce: diss/iss (closed-form residuals of the network), lmi (the "
                             "network's LMI), loop (the closed loop's LMI with --plant or --loop, judged by "
                             "`certify check MODEL --plant/--loop`); lmi and loop: affine cells only (Elman, "
                             "LP-GRNN, SS-NN, one-step cell graphs; loop: a GRU/LSTM too with --into, which "
                             "distils it first) and always the penalty strategy. Default: loop when --plant or "
                             "--loop is given, else diss")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--plant", metavar="NAME", default=None,
                       help="--target loop: close the loop around this built-in plant (`certify plants`); with "
                            "--into, around the distilled student")
    where.add_argument("--loop", metavar="FILE", default=None,
                       help="--target loop: close the loop a loop file describes (docs/loops.md); with --into, "
                            "around the distilled student")
    parser.add_argument("--strategy", choices=("preserve", "penalty"), default="preserve",
                        help="preserve: project the trained weights onto the certified set, then fine-tune "
                             "inside it with distillation from the original model; penalty: train with a "
                             "penalty on the residuals, doubling its weight each round")
    parser.add_argument("--epochs", type=int, default=200, help="epochs (of fine-tuning, or per penalty round)")
    parser.add_argument("--lr", type=float, default=None,
                        help="Adam learning rate (default: preserve 3e-2, the start of a cosine decay to lr/10 on "
                             "each fine-tuning track; --into and penalty 1e-2)")
    parser.add_argument("--loop-lr", type=float, default=None,
                        help="--into with --plant/--loop: Adam learning rate of the loop stage (default 1e-2, the "
                             "penalty strategy's; --lr applies to the distillation only)")
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
                             "(same MODEL and DATA; raise --epochs to train longer); --into with --plant/--loop: "
                             "continue the distillation from OUTDIR/student/checkpoint.pt, then rerun the loop stage "
                             "(unless the student's own loop is certified)")
    parser.add_argument("--into", choices=("lpgrnn", "grssnn"), default=None,
                        help="preserve: distil MODEL into a new network of this architecture (an LP-GRNN with a "
                             "linear bypass, or a gR-SS-NN; linear part from least squares on DATA) until it "
                             "certifies (δISS); written as a one-step cell graph. With --plant/--loop, the same run "
                             "then retrains the student for the loop (--target loop on it) unless its own loop is "
                             "certified already: the distilled student goes to OUTDIR/student/, the "
                             "loop-certified model to OUTDIR")
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


def _scaled_data(path: str, net: Any, n_in: int) -> tuple[dict[str, np.ndarray], Any]:
    """:func:`load_data` in network units (the model's declared scalings applied) and the map of outputs back
    to plant units."""
    info = net.info
    data = load_data(path, n_in, net.n_outputs)
    if info.input_scaling is not None:  # data in plant units → network units
        for k in ("u", "u_val", "u_test"):
            data[k] = info.input_scaling.to_net(data[k])
    if info.output_scaling is not None:
        for k in ("y", "y_val", "y_test"):
            data[k] = info.output_scaling.to_net(data[k])
    to_raw = info.output_scaling.to_raw if info.output_scaling is not None else (lambda a: a)
    return data, to_raw


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
    loop_lr = getattr(args, "loop_lr", None)
    if loop_lr is not None:
        if not (getattr(args, "into", None) is not None and args.target == "loop"):
            raise InvalidInputError("--loop-lr sets the learning rate of the loop stage of --into with --plant/--loop;"
                                    " use --lr otherwise.")
        if not (math.isfinite(loop_lr) and loop_lr > 0):
            raise InvalidInputError(f"--loop-lr must be a finite positive number, got {loop_lr!r}.")
    out = args.output
    if getattr(args, "into", None) is not None and (getattr(args, "strategy", "preserve") != "preserve"
                                                    or args.target == "lmi"):
        raise InvalidInputError("--into distils with --strategy preserve, for --target diss or iss, or for the "
                                "loop (--plant NAME / --loop FILE: the student is then retrained for the loop in "
                                "the same run); check the written model with `certify check --method lmi` "
                                "afterwards.")
    if getattr(args, "hidden", None) is not None and args.hidden < 1:
        raise InvalidInputError(f"--hidden must be at least 1, got {args.hidden}.")
    if getattr(args, "resume", False):
        if into_loop(args):
            ckpt = os.path.join(out, STUDENT_DIR, "checkpoint.pt")
            if not os.path.isfile(ckpt):
                raise InvalidInputError(f"--resume with --into and a loop continues the distillation stage from "
                                        f"{ckpt}, which does not exist; start without --resume.")
        elif getattr(args, "strategy", "preserve") != "preserve" or args.target in ("lmi", "loop"):
            raise InvalidInputError("--resume continues a --strategy preserve run (targets diss/iss, or --into "
                                    "with --plant/--loop).")
        elif not os.path.isfile(os.path.join(out, "checkpoint.pt")):
            raise InvalidInputError(f"--resume: no checkpoint.pt in {out}; start without --resume.")
    if os.path.lexists(out) and not os.path.isdir(out):
        raise InvalidInputError(f"-o {out} exists and is not a directory; give a new or existing output folder.")
    inputs = [args.model, args.model + ".certify.json", args.model + ".data", args.data]
    outputs = _OUTPUTS + (tuple(os.path.join(STUDENT_DIR, f) for f in _OUTPUTS) if into_loop(args) else ())
    for name in outputs:
        target = os.path.join(out, name)
        for src in inputs:
            if os.path.lexists(src) and any(os.path.lexists(t) and _same_file(t, src)
                                            for t in (target, os.path.realpath(target))):
                raise InvalidInputError(f"refusing to write {target}: it is an input of this command ({src}) and "
                                        "would be destroyed. Choose another output folder (-o).")


#: The sub-folder of OUTDIR that holds the distillation stage of ``--into`` with a loop (its own single-stage
#: layout: model.onnx, report.json, retrain.json, checkpoint.pt, rejected/).
STUDENT_DIR = "student"


def into_loop(args: argparse.Namespace) -> bool:
    """Whether the run distils into a student and then retrains the student for a loop (two stages).

    >>> ns = add_arguments(argparse.ArgumentParser()).parse_args(["m", "--data", "d", "-o", "o", "--plant",
    ...                                                           "boiler", "--into", "lpgrnn"])
    >>> resolve_target(ns), into_loop(ns)
    ('loop', True)
    """
    return getattr(args, "into", None) is not None and getattr(args, "target", None) == "loop"


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
        return _run_into_loop(args) if into_loop(args) else _run(args)
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


def _kind_row(net: Any) -> Any:
    """The network's row of the layer-kind registry (torch twin, gated or affine); unsupported kinds refused."""
    from certify.networks.kinds import KINDS

    row = KINDS.get(net.architecture)
    if row is None or row.torch_module is None:
        raise UnsupportedModelError(f"retrain supports GRU, LSTM, Elman, LP-GRNN and SS-NN networks and one-step "
                                    f"affine cell graphs; this model is {net.architecture!r}.")
    return row


def _run(args: argparse.Namespace) -> int:
    import torch

    from certify.importers import load_model
    from certify.train.metrics import metrics
    from certify.train.modules import from_canonical, save_state_dict
    from certify.train.residuals import gated_residuals
    from certify.train.trainer import simulate

    net = load_model(args.model)
    arch = net.architecture
    row = _kind_row(net)
    if args.target == "lmi" and row.gated:
        raise UnsupportedModelError("--target lmi needs an affine cell (Elman, LP-GRNN, SS-NN, one-step cell "
                                    "graph): GRU/LSTM cells have no exact SNOF. Use --target diss.")
    if args.target == "loop" and row.gated:
        where = f"--plant {args.plant}" if args.plant else f"--loop {args.loop}"
        raise UnsupportedModelError(
            f"--target loop needs an affine network (Elman with a bypass, LP-GRNN, SS-NN, one-step cell graph): "
            f"{arch.upper()} cells have no exact SNOF, so the closed-loop LMI does not apply to them (Hilgert & "
            f"Schwung 2025, Prop. IV.2). Distil it into an affine student and retrain that for the loop, in one "
            f"run: certify retrain {args.model} --data {args.data} -o OUT --into lpgrnn (or --into grssnn) "
            f"{where}.")
    module: Any = from_canonical(net)  # a module of certify.train.modules (n_in, sidecar, …)
    info = net.info
    data, to_raw = _scaled_data(args.data, net, module.n_in)
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
    import time

    from certify.api import check
    from certify.cli import write_atomic
    from certify.train.modules import save_state_dict
    from certify.train.penalties import Penalty
    from certify.train.session import EXIT_INTERRUPTED, Interrupt
    from certify.train.trainer import TrainConfig, train

    t0 = time.perf_counter()
    w = args.washout
    onnx_path = os.path.join(args.output, "model.onnx")
    weight, report, result, rounds, exported = args.penalty_weight, None, None, [], None
    kept: dict[str, Any] | None = None
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
                vf = result.history[result.best_epoch].val_fit
                kept = {"round": rnd, "epoch": result.best_epoch, "val_fit": vf if math.isfinite(vf) else None}
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
    folder = args.output
    if report.exit_code is not ExitCode.CERTIFIED and getattr(args, "distilled_student", False):
        # the loop stage of --into with a loop: an uncertified model is not the result, it is kept apart
        folder = os.path.join(args.output, "rejected")
        os.makedirs(folder, exist_ok=True)
        os.replace(onnx_path, os.path.join(folder, "model.onnx"))
        onnx_path = os.path.join(folder, "model.onnx")
    state_dict = None
    if hasattr(module, "sidecar") and getattr(module, "bypass", None) is None:  # cells, bypass heads: ONNX only
        pt_path = os.path.join(folder, "model.pt")

        def write_pt(tmp: str) -> None:
            tmp_side = save_state_dict(module, tmp, **side)[1]
            os.replace(tmp_side, pt_path + ".certify.json")

        _replace_into(pt_path, write_pt)
        state_dict = pt_path
    write_atomic(os.path.join(folder, "report.json"), report.to_json())
    after = test_metrics()
    worst = float(select(module)) if select is not None else max(float(v.detach()) for v in res(module))
    worst_json = worst if math.isfinite(worst) else None  # strict JSON has no Infinity
    summary = {"model": os.fspath(args.model), "architecture": arch, "target": target, "method": method,
               "verdict": report.verdict.value, "onnx": onnx_path, "state_dict": state_dict,
               "strategy": "penalty", "interrupted": stop(), **({"plant": args.plant, "loop": args.loop}
                                                                if target == "loop" else {}),
               "rounds": rounds, "kept": kept, "worst_residual": worst_json, "test_before": before,
               "test_after": after, "seconds": round(time.perf_counter() - t0, 3)}
    why = next((c.message for c in report.checks if c.scope == "model" and not c.proved), None)
    if report.exit_code is not ExitCode.CERTIFIED:
        summary["advice"] = _penalty_advice(args, target)
    write_atomic(os.path.join(args.output, "retrain.json"), json.dumps(summary, indent=2))
    fmt = lambda m: ", ".join(f"{k.upper()} " + "/".join(f"{v:.4g}" for v in m[k]) for k in ("fit", "rmse", "bfr"))
    print(f"test before: {fmt(before)}")
    print(f"test after:  {fmt(after)}")
    print(f"worst training residual ν = {worst:.4g}; checker verdict: {report.verdict.value} "
          f"(report: {os.path.join(folder, 'report.json')})")
    if stop():
        print(f"certify retrain: interrupted (exit {EXIT_INTERRUPTED})", file=sys.stderr)
        return EXIT_INTERRUPTED
    if report.exit_code is not ExitCode.CERTIFIED:
        print("certify retrain: the checker does not certify the retrained model" + (f": {why}" if why else "")
              + (f" Try {summary['advice']}" if target in ("lmi", "loop") else ""), file=sys.stderr)
    return 0 if report.exit_code is ExitCode.CERTIFIED else 1


def _penalty_advice(args: argparse.Namespace, target: str) -> str:
    """What to try when a penalty run (``--target lmi``/``loop``) ends without a certified model."""
    if getattr(args, "distilled_student", False):  # the loop stage of --into with a loop
        return ("more --rounds or --epochs, a larger --penalty-weight, or a student of another size (--hidden) "
                "or architecture (--into lpgrnn|grssnn).")
    return ("more --rounds or --epochs, a larger --penalty-weight, or another architecture (--into lpgrnn|grssnn "
            "with a linear bypass).")


def _clear_results(out: str) -> None:
    """Remove the result files of an earlier run from ``out`` (never anything else)."""
    import shutil

    for name in _RESULT_FILES + ("retrain.json", "checkpoint.pt"):
        path = os.path.join(out, name)
        if os.path.isfile(path) or os.path.islink(path):
            os.unlink(path)
    rej = os.path.join(out, "rejected")
    if os.path.isdir(rej) and not os.path.islink(rej):
        shutil.rmtree(rej)


def _read_summary(path: str) -> dict[str, Any]:
    try:
        with open(path) as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _run_into_loop(args: argparse.Namespace) -> int:
    """``--into`` with ``--plant``/``--loop``: distil, then retrain the student for the loop, in one run.

    1. *distil*: ``--into`` exactly as without a loop (preserve strategy, ``--target diss``; FIT drop against
       the teacher bounded by ``--max-fit-drop``), written to ``OUTDIR/student/`` in its own single-stage layout
       (model.onnx, report.json, retrain.json, checkpoint.pt, rejected/);
    2. *loop*: if ``certify.api.check`` certifies the loop around the student (``loop_verdict``), the student
       is the result (copied to OUTDIR and checked again there) and this stage does not run: it trains on the
       data alone and could only trade the student's validation FIT for a certificate the student has (it is
       recorded as ``"status": "skipped"`` with its ``reason``; ``"loop_stage": "skipped"``).  Otherwise
       ``--target loop`` on the student exactly as ``certify retrain OUTDIR/student/model.onnx --data DATA -o
       OUTDIR --plant/--loop …`` with the same options would run it: penalty rounds whose epochs qualify only
       with a validated certificate of the closed loop (:meth:`LoopTarget.select`), the written model judged by
       ``certify check --plant/--loop``.

    OUTDIR holds the result as a single-stage run does (model.onnx, report.json, model.pt where a state-dict
    layout exists) and ``retrain.json`` with both stages (``"stages"``).  A distillation without a usable
    student stops before the loop stage (its exit code); a loop the checker does not certify leaves no model in
    OUTDIR: the last one is kept apart in ``OUTDIR/rejected/`` and the exit code is 1.  ``--resume`` continues
    the distillation from ``OUTDIR/student/checkpoint.pt`` and reruns the loop stage (unless the student's loop is
    certified).
    """
    import contextlib
    import tempfile
    import time

    import numpy as np

    from certify.cli import write_atomic
    from certify.importers import load_model
    from certify.loop.check import resolve_loop
    from certify.train.loop_penalty import LoopTarget
    from certify.train.metrics import fit, metrics
    from certify.train.modules import from_canonical
    from certify.train.session import EXIT_INTERRUPTED, Interrupt
    from certify.train.students import build_student
    from certify.train.trainer import simulate

    t0 = time.perf_counter()
    out, w = args.output, args.washout
    student_dir = os.path.join(out, STUDENT_DIR)
    where = f"--plant {args.plant}" if args.plant else f"--loop {args.loop}"

    def log(msg: str) -> None:
        print(f"certify retrain: {msg}", file=sys.stderr, flush=True)

    # ---- before any training: the teacher, the data and the loop. A loop that no weights can certify (or that
    # does not fit the model's signals) is refused now, with a student of the same shape, not after the distillation.
    teacher_net = load_model(args.model)
    _kind_row(teacher_net)
    teacher: Any = from_canonical(teacher_net)
    data, to_raw = _scaled_data(args.data, teacher_net, teacher.n_in)
    spec = resolve_loop(args.plant, args.loop)
    hidden = args.hidden or getattr(teacher, "hidden", None) or 8
    with tempfile.TemporaryDirectory() as tmp:
        probe = os.path.join(tmp, "student.onnx")
        _export(build_student(args.into, data["u"], data["y"], hidden, seed=args.seed), probe, args,
                teacher_net.info)
        LoopTarget(load_model(probe), spec, solver=args.solver)
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"cannot create the output folder {out}: {exc.strerror or exc}") from None
    _clear_results(out)  # no result of an earlier run may be mistaken for this one's (the loop stage reruns)
    summary: dict[str, Any] = {
        "model": os.fspath(args.model), "architecture": f"{teacher_net.architecture}->{args.into}",
        "target": "loop", "method": "lmi", "strategy": "preserve+penalty", "into": args.into,
        "plant": args.plant, "loop": args.loop, "status": "running", "stage": "distil", "interrupted": False,
        "verdict": "not_certified", "onnx": None, "state_dict": None, "student": None,
        "max_fit_drop": args.max_fit_drop, "val_fit_before": None, "val_fit_after": None, "kept": None,
        "test_before": None, "test_after": None, "distance_to_original": None, "worst_residual": None,
        "seconds": 0.0, "stages": [], "loop_stage": None,
    }
    summary_path = os.path.join(out, "retrain.json")

    def save() -> None:
        summary["seconds"] = round(time.perf_counter() - t0, 3)
        write_atomic(summary_path, json.dumps(summary, indent=2))

    save()
    fmt = lambda m: ", ".join(f"{k.upper()} " + "/".join(f"{v:.4g}" for v in m[k]) for k in ("fit", "rmse", "bfr"))  # noqa: E731
    pct = lambda vals: "/".join(f"{v:.2f}" for v in vals)  # noqa: E731
    kept_student: dict[str, Any] | None = None  # the student as the result: its own loop is certified
    rc2: int | None = None
    try:
        with Interrupt() as stop:
            # ---- stage 1: distillation (stage output on stderr: stdout carries the result's figures)
            s1 = copy.copy(args)
            s1.target, s1.plant, s1.loop, s1.output = "diss", None, None, student_dir
            log(f"stage 1/2: distil {teacher_net.architecture.upper()} into {args.into} (hidden {hidden}, "
                f"--target diss) in {student_dir}")
            with contextlib.redirect_stdout(sys.stderr):
                rc1 = _run(s1)
            first = _read_summary(os.path.join(student_dir, "retrain.json"))
            summary["stages"] = [{"stage": "distil", "exit_code": rc1, "output": student_dir, **first}]
            summary["val_fit_before"], summary["test_before"] = first.get("val_fit_before"), first.get("test_before")
            if rc1 != 0 or first.get("status") != "certified" or stop():
                interrupted = rc1 == EXIT_INTERRUPTED or stop()
                summary.update(status=first.get("status", "not_certified") if not interrupted else "not_certified",
                               interrupted=interrupted)
                if interrupted:
                    summary["advice"] = (f"interrupted during the distillation; continue with --resume -o {out}.")
                else:
                    summary["advice"] = (f"{first.get('advice') or 'no usable student'} The loop stage did not run "
                                         "(it needs a certified student within --max-fit-drop).")
                save()
                if first.get("test_before"):
                    print(f"test before: {fmt(first['test_before'])}")
                if interrupted:
                    log(f"interrupted in stage 1 (distillation); continue with --resume -o {out} "
                        f"(exit {EXIT_INTERRUPTED})")
                    return EXIT_INTERRUPTED
                log(f"stage 1 (distillation) gave no usable student ({summary['status']}); the loop stage did "
                    f"not run and {out} holds no model. Next: {summary['advice']}")
                return rc1 if rc1 != 0 else int(ExitCode.NOT_CERTIFIED)
            # ---- the student's own loop. Certified: the student is the result and the loop stage does not run
            # (it trains on the data alone, without the teacher, and could only trade the student's fit for a
            # certificate the student has already)
            from certify.api import check

            student_loop = check(first["onnx"], plant=args.plant, loop=args.loop, solver=args.solver, search=False)
            summary["stages"][0]["loop_verdict"] = student_loop.verdict.value
            summary["student"] = first["onnx"]
            if student_loop.exit_code is ExitCode.CERTIFIED:
                kept_student = _keep_student(args, first["onnx"])
                if kept_student is None:  # the written copy was not certified (never seen): the loop stage decides
                    log("the copy of the student in the output folder is not certified by the checker; running "
                        "the loop stage")
            if kept_student is not None:
                log(f"stage 2/2 (loop) skipped: certify check certifies the loop ({where}) around the student "
                    f"already; the student is the result")
            else:
                # ---- stage 2: the loop target on the student, as a second command would run it
                summary["stage"] = "loop"
                save()
                s2 = copy.copy(args)
                s2.model, s2.into, s2.hidden, s2.resume = first["onnx"], None, None, False
                s2.lr = 1e-2 if getattr(args, "loop_lr", None) is None else args.loop_lr   # --lr: distillation
                s2.distilled_student = True
                log(f"stage 2/2: retrain the student for the loop ({where}; the same as certify retrain "
                    f"{first['onnx']} --data {args.data} -o {out} {where} --lr {s2.lr:g})")
                with contextlib.redirect_stdout(sys.stderr):
                    rc2 = _run(s2)
            interrupted = rc2 == EXIT_INTERRUPTED or stop()
    except BaseException as exc:  # an error or a second Ctrl-C: retrain.json must not say "running"
        summary.update(status="error", interrupted=isinstance(exc, KeyboardInterrupt),
                       error=str(exc) or type(exc).__name__)
        with contextlib.suppress(Exception):
            save()
        raise
    if kept_student is not None:
        stage2: dict[str, Any] = {"stage": "loop", "status": "skipped", "exit_code": None, "verdict": "certified",
                                  "reason": SKIP_REASON, "onnx": None, "kept": None, "rounds": [], "seconds": 0.0}
        summary["stages"].append(stage2)
        certified = True
        summary.update(status="certified", verdict="certified", interrupted=interrupted, worst_residual=None,
                       loop_stage="skipped")
    else:
        second = _read_summary(summary_path)  # the loop stage's own summary (rewritten below)
        stage2 = {"stage": "loop", "exit_code": rc2, "lr": s2.lr, **second}
        summary["stages"].append(stage2)
        certified = second.get("verdict") == "certified"
        summary.update(status="certified" if certified else "not_certified", verdict=second.get("verdict",
                       "not_certified"), interrupted=interrupted, worst_residual=second.get("worst_residual"),
                       loop_stage="ran")
    # an uncertified model is not the result: the loop stage kept it apart in OUTDIR/rejected/
    result_dir = out if certified else os.path.join(out, "rejected")
    final_path = os.path.join(result_dir, "model.onnx")
    if os.path.isfile(final_path):
        final: Any = from_canonical(load_model(final_path))
        y_teacher = simulate(teacher, data["u_test"])[w:]
        y_final = simulate(final, data["u_test"])[w:]
        after = metrics(to_raw(data["y_test"][w:]), to_raw(y_final))
        distance = {"rmse": metrics(to_raw(y_teacher), to_raw(y_final))["rmse"],
                    "fit_vs_original": fit(to_raw(y_teacher), to_raw(y_final)).tolist()}
        if kept_student is None:
            stage2["distance_to_original"] = distance  # of the loop stage's model, against the teacher
        if certified:
            vf = float(np.mean(fit(data["y_val"][w:], simulate(final, data["u_val"])[w:])))
            kept = {"stage": "distil", **(first.get("kept") or {})} if kept_student is not None else \
                {"stage": "loop", **(stage2.get("kept") or {})}
            summary.update(onnx=final_path, test_after=after, distance_to_original=distance,
                           val_fit_after=vf if np.isfinite(vf) else None, kept=kept,
                           state_dict=kept_student["state_dict"] if kept_student is not None
                           else stage2.get("state_dict"))
    if not certified:
        summary["advice"] = (f"{stage2.get('advice') or 'more --rounds or --epochs.'} The distilled student "
                             f"({first['onnx']}, δISS-certified; its loop is not) can be retrained for the loop "
                             f"alone: certify retrain {first['onnx']} --data {args.data} -o OTHER {where}.")
    save()
    # ---- the result's figures (stdout, as a single-stage run prints them) and a summary line (stderr)
    print(f"test before: {fmt(first['test_before'])}")
    if summary["test_after"] is not None:
        d = summary["distance_to_original"]
        print(f"test after:  {fmt(summary['test_after'])}")
        print(f"distance to the original model (test): RMSE {'/'.join(f'{v:.4g}' for v in d['rmse'])}, FIT vs "
              f"original {'/'.join(f'{v:.4g}' for v in d['fit_vs_original'])} %")
    sec = summary["seconds"]
    k1 = first.get("kept") or {}
    if certified and kept_student is not None:
        log(f"certified: the loop ({where}) around the distilled student, judged by certify check (the loop stage "
            f"did not run: the student's own loop was certified); test FIT {pct(first['test_before']['fit'])} "
            f"(teacher) → {pct(summary['test_after']['fit'])} % (student, the result), FIT vs teacher "
            f"{pct(summary['distance_to_original']['fit_vs_original'])} %; kept: distil {k1.get('phase')} "
            f"{k1.get('epoch')}; {sec:.1f} s; model: {final_path}")
    elif certified:
        kept = summary["kept"]
        log(f"certified: the loop ({where}) around the retrained student, judged by certify check; test FIT "
            f"{pct(first['test_before']['fit'])} (teacher) → {pct(first['test_after']['fit'])} (student) → "
            f"{pct(summary['test_after']['fit'])} % (result), FIT vs teacher "
            f"{pct(summary['distance_to_original']['fit_vs_original'])} %; kept: distil {k1.get('phase')} "
            f"{k1.get('epoch')}, loop round {kept.get('round', -1) + 1} epoch {kept.get('epoch')}; {sec:.1f} s; "
            f"model: {final_path}")
    else:
        log(f"the checker does not certify the loop ({where}) around the retrained student. That model is NOT the "
            f"result; it is kept apart in {result_dir}. Next: {summary['advice']}")
    if interrupted:
        if kept_student is not None:
            log(f"interrupted after the last step; the result above is complete (exit {EXIT_INTERRUPTED})")
        else:
            log(f"interrupted in stage 2 (loop); --resume -o {out} reloads the distillation's checkpoint and "
                f"reruns the loop stage (exit {EXIT_INTERRUPTED})")
        return EXIT_INTERRUPTED
    return int(ExitCode.CERTIFIED) if certified else int(ExitCode.NOT_CERTIFIED)


#: Why ``--into`` with a loop keeps a student whose own loop is certified (``retrain.json``, the skipped stage).
SKIP_REASON = ("the checker certifies the loop around the distilled student already; the loop stage trains on the "
               "data alone and could only trade the student's validation FIT for a certificate it has, so the "
               "student is the result")


def _keep_student(args: argparse.Namespace, onnx: str) -> dict[str, Any] | None:
    """Write the distilled student (its loop certified) as the result in OUTDIR: ``model.onnx`` (a copy of the
    one-step cell graph), judged again by :func:`certify.api.check` on the written file, and its loop
    ``report.json``. No ``model.pt``, as the loop stage writes none for a cell graph (a gR-SS-NN student's state
    dict in ``OUTDIR/student/`` carries no scalings, so its loop is not the one certified).  Returns
    ``{"report", "state_dict"}``, or None (and no ``model.onnx`` left in OUTDIR) if the checker does not certify
    the copy."""
    import shutil

    from certify.api import check
    from certify.cli import write_atomic

    onnx_path = os.path.join(args.output, "model.onnx")
    _replace_into(onnx_path, lambda tmp: shutil.copyfile(onnx, tmp))
    report = check(onnx_path, plant=args.plant, loop=args.loop, solver=args.solver, search=False)
    if report.exit_code is not ExitCode.CERTIFIED:
        os.unlink(onnx_path)
        return None
    write_atomic(os.path.join(args.output, "report.json"), report.to_json())
    return {"report": report, "state_dict": None}


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m certify.train.retrain``)."""
    parser = argparse.ArgumentParser(prog="certify retrain", formatter_class=argparse.RawDescriptionHelpFormatter)
    return run(add_arguments(parser).parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
