"""The ``--strategy preserve`` run of ``certify retrain``: checkpoints, Ctrl-C, ``--resume``, progress, advice.

Files in the output folder (every one written atomically: a temporary file beside it, then ``os.replace``):

* ``model.onnx``, ``model.pt`` (+ sidecar), ``report.json`` — the best certified model so far whose validation
  FIT is within ``--max-fit-drop`` points of the original's, rewritten whenever a better one appears (each
  candidate is exported and judged by :func:`certify.api.check`, not by the training residuals);
* ``rejected/`` — while no acceptable model exists, the best certified model that loses more FIT (never the
  result; removed once an acceptable model is found);
* ``retrain.json`` — the summary and the per-epoch history, rewritten every epoch;
* ``checkpoint.pt`` — the current weights, optimiser state, history and best so far (``--resume``).

SIGINT (Ctrl-C) sets a flag: the current step finishes, the files above are brought up to date and the run
exits with code 130; a second Ctrl-C aborts at once (the files on disk are complete, being atomic).
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import signal
import sys
import threading
import time
from typing import Any

import numpy as np

__all__ = ["EXIT_INTERRUPTED", "Interrupt", "advice"]

#: Exit code after Ctrl-C (128 + SIGINT, the shell convention; ``certify`` uses it for every interruption).
EXIT_INTERRUPTED = 130


class Interrupt:
    """Context manager: the first SIGINT sets :attr:`requested` (and prints a note), the second aborts.

    >>> with Interrupt() as stop:
    ...     stop.handle(signal.SIGINT, None)
    ...     stop()
    True

    Nested (the stages of one run): a Ctrl-C inside the inner one is seen by the outer one, and an inner one
    entered after a Ctrl-C starts interrupted.

    >>> with Interrupt(quiet=True) as outer:
    ...     with Interrupt(quiet=True) as inner:
    ...         inner.handle(signal.SIGINT, None)
    ...     with Interrupt(quiet=True) as later:
    ...         pass
    >>> outer(), later()
    (True, True)
    """

    def __init__(self, quiet: bool = False) -> None:
        self.requested = False
        self.quiet = quiet
        self._prev: Any = None

    def __call__(self) -> bool:
        return self.requested

    def handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if not self.quiet:
            print("\ncertify retrain: interrupted: saving the best certified model so far "
                  "(Ctrl-C again aborts)", file=sys.stderr, flush=True)

    def __enter__(self) -> Interrupt:
        if threading.current_thread() is threading.main_thread():
            self._prev = signal.signal(signal.SIGINT, self.handle)
            outer = getattr(self._prev, "__self__", None)
            if isinstance(outer, Interrupt) and outer.requested:  # nested (a stage of a two-stage run)
                self.requested = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._prev is not None:
            signal.signal(signal.SIGINT, self._prev)
            outer = getattr(self._prev, "__self__", None)
            if isinstance(outer, Interrupt) and self.requested:  # the enclosing run sees the Ctrl-C too
                outer.requested = True


def advice(arch: str, hidden: int | None, drop: float | None, certified: bool) -> str:
    """What to try next when no certified model keeps the fit (shown on stderr and in retrain.json).

    >>> "--into lpgrnn --hidden 16" in advice("gru", 16, 30.0, True)
    True
    """
    tips = []
    if certified and drop is not None:
        tips.append(f"the certified model loses {drop:.1f} FIT points; train longer (--epochs, --resume), try "
                    "--barrier 0 (every epoch on the boundary track, better when the fit lies on the boundary of the "
                    "certified set) or "
                    "accept more with --max-fit-drop")
    elif not certified:
        tips.append("no certified weights were found; raise --project-steps or use --strategy penalty")
    if hidden is not None:
        tips.append(f"a bigger model (e.g. hidden {2 * hidden}) has more room inside the certified set; train it "
                    "with the stability penalty from the start (Bonassi, Farina & Scattolini 2021)")
    if arch in ("gru", "lstm"):
        tips.append(f"or distil it into an LP-GRNN with a linear bypass (Hilgert & Schwung 2025): --into lpgrnn "
                    f"--hidden {hidden or 8}; it is less constrained by the norm tests and the LMI of closed loops "
                    "applies to it")
    return "; ".join(tips) + "."


def _mean_fit(vals: list[float]) -> float:
    return float(np.mean(vals))


def run_preserve(ctx: dict[str, Any]) -> int:
    """Run the preserve strategy; ``ctx`` is prepared by :func:`certify.train.retrain._run`."""
    import torch

    from certify.api import check
    from certify.cli import write_atomic
    from certify.results import ExitCode
    from certify.train.metrics import fit, metrics
    from certify.train.preserve import PreserveConfig, finetune, project, worst_residual
    from certify.train.trainer import pick_device, simulate

    args, module, data, res, method = ctx["args"], ctx["module"], ctx["data"], ctx["residuals"], ctx["method"]
    info, arch, w = ctx["info"], ctx["arch"], args.washout
    out_dir = args.output
    export, replace_into, write_pt = ctx["export"], ctx["replace_into"], ctx["write_pt"]
    to_raw = ctx["to_raw"]
    t0 = time.perf_counter()
    dev = pick_device(args.device)
    torch.manual_seed(args.seed)
    module.to(dev).float().eval()
    teacher = (ctx.get("teacher") or copy.deepcopy(module)).to(dev).float().eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    cfg = PreserveConfig(epochs=args.epochs, project_steps=args.project_steps, lr=args.lr,
                         project_lr=max(args.lr, 1e-2), batch_size=args.batch_size, seq_len=args.seq_len,
                         washout=w, distill=args.distill, eps=args.clearance, barrier=args.barrier)
    val_fit_of = lambda m: _mean_fit(fit(data["y_val"][w:], simulate(m, data["u_val"])[w:]).tolist())  # noqa: E731
    teacher_val_fit = val_fit_of(teacher)
    ckpt_path = os.path.join(out_dir, "checkpoint.pt")
    rej_dir = os.path.join(out_dir, "rejected")
    state: dict[str, Any] = {"history": [], "best": None, "rejected": None, "projection": None, "next_epoch": 0}
    opt_state = None
    rng = np.random.default_rng(args.seed)
    if args.resume:
        try:
            ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        except Exception as exc:
            from certify.errors import InvalidInputError

            raise InvalidInputError(f"--resume: cannot read {ckpt_path}: {exc}") from None
        from certify.errors import InvalidInputError

        if ck.get("model_sha256") != info.sha256 or ck.get("target") != args.target or \
                ck.get("into") != getattr(args, "into", None):
            raise InvalidInputError(f"--resume: {ckpt_path} belongs to another model, target or --into; start "
                                    "without --resume or use another output folder.")
        try:
            module.load_state_dict(ck["state"])
        except RuntimeError:
            raise InvalidInputError(f"--resume: the weights in {ckpt_path} do not fit this model (another "
                                    "--hidden?); start without --resume or use another output folder.") from None
        module.to(dev)
        opt_state = ck["optimizer"]
        state = json.loads(ck["session"])
        for key in ("best", "rejected"):
            if state[key] is not None:
                state[key]["state"] = ck[f"{key}_state"]
        rng.bit_generator.state = json.loads(ck["rng"])
    else:  # a fresh run: no result of an earlier run may be mistaken for this one's
        for name in _RESULTS + ("retrain.json", "checkpoint.pt"):
            if os.path.isfile(os.path.join(out_dir, name)):
                os.unlink(os.path.join(out_dir, name))
        if os.path.isdir(rej_dir) and not os.path.islink(rej_dir):
            shutil.rmtree(rej_dir)

    def candidate_files(folder: str, m: Any) -> tuple[Any, str]:
        """Export ``m`` into ``folder`` and judge the file; returns (report, onnx path)."""
        os.makedirs(folder, exist_ok=True)
        onnx_path = os.path.join(folder, "model.onnx")
        replace_into(onnx_path, lambda tmp: export(m, tmp))
        report = check(onnx_path, method=method, solver=args.solver, search=False)
        return report, onnx_path

    def consider(rec: dict[str, Any]) -> None:
        """Keep ``module``'s weights if they beat the best so far and the checker certifies them."""
        vf = rec["val_fit"]
        rec["feasible"] = bool(rec["residual"] < -args.clearance)
        rec["checker"] = None
        if vf is None or not rec["feasible"]:
            return
        acceptable = teacher_val_fit - vf <= args.max_fit_drop
        key = "best" if acceptable else "rejected"
        if (not acceptable and state["best"] is not None) or \
                (state[key] is not None and vf <= state[key]["val_fit"]):
            return
        m = copy.deepcopy(module).cpu().float().eval()
        folder = out_dir if acceptable else rej_dir
        report, onnx_path = candidate_files(folder, m)
        rec["checker"] = report.verdict.value
        if report.exit_code is not ExitCode.CERTIFIED:
            return
        if hasattr(m, "sidecar") and getattr(m, "bypass", None) is None:  # a state dict has no head D: ONNX only
            write_pt(m, os.path.join(folder, "model.pt"))
        write_atomic(os.path.join(folder, "report.json"), report.to_json())
        state[key] = {"epoch": rec["epoch"], "phase": rec["phase"], "val_fit": vf, "residual": rec["residual"],
                      "state": {k: v.detach().cpu().clone() for k, v in m.state_dict().items()}}
        if acceptable and os.path.isdir(rej_dir) and not os.path.islink(rej_dir):
            shutil.rmtree(rej_dir)  # superseded: an acceptable certified model exists
            state["rejected"] = None

    def summary(status: str, interrupted: bool) -> dict[str, Any]:
        best = state["best"] or state["rejected"]
        out: dict[str, Any] = {
            "model": os.fspath(args.model), "architecture": arch, "target": args.target, "method": method,
            "strategy": "preserve", "into": getattr(args, "into", None), "status": status, "interrupted": interrupted,
            "verdict": "certified" if best is not None else "not_certified",
            "onnx": None, "state_dict": None, "max_fit_drop": args.max_fit_drop,
            "val_fit_before": teacher_val_fit, "val_fit_after": None if best is None else best["val_fit"],
            "kept": None if best is None else {k: best[k] for k in ("phase", "epoch", "val_fit", "residual")},
            "projection": state["projection"], "test_before": ctx["before"], "test_after": None,
            "distance_to_original": None, "worst_residual": None if best is None else best["residual"],
            "seconds": round(time.perf_counter() - t0, 3), "history": state["history"],
        }
        if best is not None:
            folder = out_dir if state["best"] is not None else rej_dir
            out["onnx"] = os.path.join(folder, "model.onnx")
            if os.path.isfile(os.path.join(folder, "model.pt")):
                out["state_dict"] = os.path.join(folder, "model.pt")
        return out

    def save_checkpoint(opt: Any) -> None:
        sess = json.loads(json.dumps({k: ({kk: vv for kk, vv in v.items() if kk != "state"} if isinstance(v, dict)
                                          and "state" in v else v) for k, v in state.items()}))
        ck = {"version": 1, "model_sha256": info.sha256, "target": args.target, "into": getattr(args, "into", None),
              "state": {k: v.detach().cpu() for k, v in module.state_dict().items()},
              "optimizer": None if opt is None else opt.state_dict(), "session": json.dumps(sess),
              "rng": json.dumps(rng.bit_generator.state)}
        for key in ("best", "rejected"):
            if state[key] is not None:
                ck[f"{key}_state"] = state[key]["state"]
        replace_into(ckpt_path, lambda tmp: torch.save(ck, tmp))
        write_atomic(os.path.join(out_dir, "retrain.json"), json.dumps(summary("running", False), indent=2))

    tty = sys.stderr.isatty()
    bar: Any = None
    every = args.log_every

    def log(msg: str) -> None:
        if bar is not None:
            bar.write(msg, file=sys.stderr)
        else:
            print(msg, file=sys.stderr, flush=True)

    def best_txt() -> str:
        b = state["best"] or state["rejected"]
        return "none yet" if b is None else f"{b['val_fit']:.2f} % ({b['phase']} {b['epoch']})"

    threads = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(1)  # small recurrent models: one thread beats two contending ones
    try:
        with Interrupt() as stop:
            if state["projection"] is None:  # ---- projection onto the certified set
                log(f"certify retrain: projecting onto the certified set (ν < −{args.clearance:g}); start: ν = "
                    f"{worst_residual(module, res):.4g}; original model's validation FIT {teacher_val_fit:.2f} %")
                proj = project(module, teacher, data["u"], data["y"], res, cfg, rng, stop=stop)
                vf = val_fit_of(module)
                proj["val_fit"] = vf if math.isfinite(vf) else None
                proj["seconds"] = round(time.perf_counter() - t0, 3)
                state["projection"] = proj
                log(f"certify retrain: projection ({proj['method']}, {proj['steps']} steps"
                    + (f", scale {proj['scale']:.3g}" if proj["scale"] is not None else "")
                    + f"): ν = {proj['residual']:.4g}, validation FIT {vf:.2f} %")
                rec = {"phase": "projection", "epoch": -1, "loss": None, "lr": None, "val_fit": proj["val_fit"],
                       "residual": proj["residual"]}
                consider(rec)
                state["history"].append(rec)
                if not proj["feasible"]:
                    state["next_epoch"] = args.epochs  # nothing to fine-tune from
                if proj["feasible"] or not stop():  # an interrupted projection is not a state to resume from
                    save_checkpoint(None)
            start = state["next_epoch"]
            if start < args.epochs and not stop():  # ---- fine-tuning inside the certified set
                if tty:
                    from tqdm import tqdm

                    bar = tqdm(total=args.epochs, initial=start, desc="fine-tune epoch", leave=False,
                               file=sys.stderr)

                def on_epoch(rec: dict[str, Any], opt: Any) -> None:
                    consider(rec)
                    state["history"].append(rec)
                    state["next_epoch"] = rec["epoch"] + 1
                    save_checkpoint(opt)
                    if bar is not None:
                        bar.set_postfix_str(f"loss {rec['loss']:.3g} · val FIT {rec['val_fit'] or float('nan'):.1f}"
                                            f" · ν {rec['residual']:.3f} · best {best_txt()}")
                        bar.update(1)
                    elif every and ((rec["epoch"] + 1) % every == 0 or rec["epoch"] + 1 == args.epochs):
                        log(f"certify retrain: fine-tune epoch {rec['epoch'] + 1}/{args.epochs}: loss "
                            f"{rec['loss']:.4g}, val FIT {rec['val_fit'] or float('nan'):.2f} %, "
                            f"ν {rec['residual']:.4g}, best {best_txt()}")

                finetune(module, teacher, data["u"], data["y"], data["u_val"], data["y_val"], res, cfg, rng,
                         start_epoch=start, optimizer_state=opt_state, on_epoch=on_epoch, stop=stop)
            interrupted = stop()
    finally:
        if bar is not None:
            bar.close()
        torch.set_num_threads(threads)

    # ---- result
    best = state["best"] or state["rejected"]
    final = copy.deepcopy(module).cpu().float().eval()
    if best is not None:
        final.load_state_dict(best["state"])
    status = "certified" if state["best"] is not None else (
        "fit_loss_too_large" if state["rejected"] is not None else "not_certified")
    out = summary(status, interrupted)
    test_in = data["u_test"]
    y_orig = simulate(teacher.cpu(), test_in)[w:]
    if best is not None:
        y_new = simulate(final, test_in)[w:]
        out["test_after"] = metrics(to_raw(data["y_test"][w:]), to_raw(y_new))
        out["distance_to_original"] = {"rmse": metrics(to_raw(y_orig), to_raw(y_new))["rmse"],
                                       "fit_vs_original": fit(to_raw(y_orig), to_raw(y_new)).tolist()}
    drop = None if best is None else teacher_val_fit - best["val_fit"]
    if status != "certified":
        out["advice"] = advice(arch, getattr(module, "hidden", None), drop, best is not None)
    write_atomic(os.path.join(out_dir, "retrain.json"), json.dumps(out, indent=2))
    fmt = lambda m: ", ".join(f"{k.upper()} " + "/".join(f"{v:.4g}" for v in m[k]) for k in ("fit", "rmse", "bfr"))  # noqa: E731
    print(f"test before: {fmt(ctx['before'])}")
    if out["test_after"] is not None:
        print(f"test after:  {fmt(out['test_after'])}")
        d = out["distance_to_original"]
        print(f"distance to the original model (test): RMSE {'/'.join(f'{v:.4g}' for v in d['rmse'])}, FIT vs "
              f"original {'/'.join(f'{v:.4g}' for v in d['fit_vs_original'])} %")
    sec = out["seconds"]
    if out["distance_to_original"] is not None:
        d = out["distance_to_original"]
        log(f"certify retrain: test FIT {'/'.join(f'{v:.2f}' for v in ctx['before']['fit'])} → "
            f"{'/'.join(f'{v:.2f}' for v in out['test_after']['fit'])} %; distance to the original outputs: RMSE "
            f"{'/'.join(f'{v:.4g}' for v in d['rmse'])}, FIT {'/'.join(f'{v:.2f}' for v in d['fit_vs_original'])} %")
    if status == "certified":
        log(f"certify retrain: certified ({method}); validation FIT {teacher_val_fit:.2f} → {best['val_fit']:.2f} %"
            f" (kept: {best['phase']} {best['epoch']}), ν = {best['residual']:.4g}, {sec:.1f} s; "
            f"model: {out['onnx']}")
    elif status == "fit_loss_too_large":
        log(f"certify retrain: certified only at a loss of {drop:.2f} validation FIT points (> --max-fit-drop "
            f"{args.max_fit_drop:g}): {teacher_val_fit:.2f} → {best['val_fit']:.2f} %. That model is NOT the "
            f"result; it is kept apart in {rej_dir}. Next: {out['advice']}")
    else:
        log(f"certify retrain: not certified after {sec:.1f} s (best training residual ν = "
            f"{state['projection']['residual'] if state['projection'] else float('nan'):.4g}). Next: "
            f"{out['advice']}")
    if interrupted:
        log(f"certify retrain: interrupted; continue with --resume -o {out_dir} (exit {EXIT_INTERRUPTED})")
        return EXIT_INTERRUPTED
    return int(ExitCode.CERTIFIED) if status == "certified" else int(ExitCode.NOT_CERTIFIED)


_RESULTS = ("model.onnx", "model.pt", "model.pt.certify.json", "report.json")
