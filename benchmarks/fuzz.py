"""Long fuzz campaign against the real ``certify`` command line; prints counts by input kind and outcome.

Usage::

    python benchmarks/fuzz.py --cases 200                 # 200 generated cases per kind, in-process
    python benchmarks/fuzz.py --cases 50 --subprocess     # each case as `python -m certify ...` (slower)
    python benchmarks/fuzz.py --kinds loop plant --cases 500 --show-failures

Kinds: onnx (mutated ONNX protobufs: dims, attributes, op types, initializer bytes, data types, metadata,
opsets, cycles, huge constant folding, byte damage), raw_bytes, state_dict (mutated PyTorch state dicts:
shapes, NaN, extra/missing keys, sparse/quantized tensors, nesting, dtypes), sidecar, loop (mutated TOML/JSON
loop files), plant (mutated JSON/TOML/npz plant files, declared 3000-state npz, object arrays), plus the fixed
special-file, output-path and retrain cases (``--fixed``).  A case passes when it exits with 0, 1, 3 or 4,
prints no traceback, finishes within ``--timeout`` and leaves every input file unchanged.  The same case
numbers give the same cases on every run (``--start`` shifts them).
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _fuzz_cases as F  # noqa: E402

COLUMNS = ["0", "1", "2", "3", "4", "5", "hang", "traceback", "modified", "failed", "total", "seconds"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=100, help="generated cases per kind (default 100)")
    p.add_argument("--kinds", nargs="+", default=list(F.GENERATORS), choices=list(F.GENERATORS))
    p.add_argument("--fixed", action=argparse.BooleanOptionalAction, default=True,
                   help="also run the fixed special-file, output-path and retrain cases (default: yes)")
    p.add_argument("--start", type=int, default=0, help="number of the first generated case")
    p.add_argument("--timeout", type=float, default=60.0, help="per-case limit in seconds (default 60)")
    p.add_argument("--subprocess", action="store_true", help="run each case as `python -m certify` (slower)")
    p.add_argument("--show-failures", action="store_true", help="print every failing case")
    args = p.parse_args(argv)

    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
    kinds = [k for k in args.kinds if have_torch or k not in ("state_dict", "sidecar")]
    work: list[tuple[str, F.Case]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kind in kinds:
            for i in range(args.start, args.start + args.cases):
                work.append((kind, F.GENERATORS[kind](random.Random(f"{kind}-{i}"))))
        if args.fixed:
            work += [(c.kind, c) for c in F.special_cases()]
            if have_torch:
                work += [(c.kind, c) for c in F.retrain_cases()]

    table: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    failures = []
    t_all = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="certify-fuzz-") as tmp:
        for n, (kind, case) in enumerate(work):
            out = F.run_case(case, Path(tmp) / f"c{n}", timeout=args.timeout, subprocess_mode=args.subprocess)
            row = table[kind]
            row["total"] += 1
            row["seconds"] += out.seconds
            if out.exit_code is not None:
                row[str(out.exit_code)] += 1
            row["hang"] += out.hang
            row["traceback"] += out.traceback
            row["modified"] += bool(out.modified)
            if not out.ok:
                row["failed"] += 1
                failures.append((kind, case, out))
                if args.show_failures:
                    print(f"FAIL {kind} {case.label!r} exit={out.exit_code} hang={out.hang} tb={out.traceback} "
                          f"modified={out.modified} area={out.area or '-'}\n    {case.argv}\n    "
                          + out.stderr[-600:].replace("\n", "\n    "), flush=True)
            if (n + 1) % 100 == 0:
                print(f"... {n + 1}/{len(work)} cases, {time.monotonic() - t_all:.0f} s", file=sys.stderr, flush=True)

    mode = "subprocess" if args.subprocess else "in-process"
    print(f"\n{len(work)} cases ({mode}, per-case limit {args.timeout:g} s) in {time.monotonic() - t_all:.0f} s\n")
    print("| kind | " + " | ".join(f"exit {c}" if c.isdigit() else c for c in COLUMNS) + " |")
    print("|" + " --- |" * (len(COLUMNS) + 1))
    total: collections.Counter = collections.Counter()
    for kind in sorted(table):
        total.update(table[kind])
        print(f"| {kind} | " + " | ".join(_cell(table[kind], c) for c in COLUMNS) + " |")
    print("| **all** | " + " | ".join(_cell(total, c) for c in COLUMNS) + " |")
    if failures:
        areas = collections.Counter(out.area or "?" for _, _, out in failures)
        print("\nfailures by area (innermost certify frame): " + ", ".join(f"{a}: {n}" for a, n in areas.items()))
        causes = collections.Counter(_cause(out.stderr) for _, _, out in failures)
        print("distinct causes:")
        for cause, n in causes.most_common(30):
            print(f"  {n:4d}  {cause}")
    return 1 if failures else 0


def _cell(row: collections.Counter, col: str) -> str:
    return f"{row[col]:.0f}" if col == "seconds" else str(row[col])


def _cause(text: str) -> str:
    for line in reversed(text.splitlines()):
        if "internal error" in line:
            return line.strip()[:160]
        if line.startswith(("TypeError", "ValueError", "RuntimeError", "KeyError", "IndexError", "AttributeError")):
            return line.strip()[:160]
    return (text.strip().splitlines() or ["(no output: hang?)"])[-1][:160]


if __name__ == "__main__":
    raise SystemExit(main())
