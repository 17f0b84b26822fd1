"""Run the code blocks of the Markdown documentation (README.md, docs/*.md, models_zoo/README.md).

Convention:

* fenced blocks (```` ``` ```` or ``~~~``) whose info string is exactly ``python`` or ``bash`` are
  executed; any other info string (``text``, ``console``, ``toml``, ``json``, ``yaml``, none) is not;
* ``<!-- docs-test: skip (reason) -->`` alone on the line right before an opening fence skips that block;
* each Markdown file runs in order in a fresh temporary directory that holds symlinks ``models_zoo``,
  ``examples``, ``docs`` and ``benchmarks`` into the repository (write outputs to relative paths);
* the Python blocks of one file share one namespace (``exec``, in order, in this process);
* each block has a 300 s timeout; bash blocks run as ``bash -e -o pipefail``; they and the
  subprocesses of Python blocks get the running interpreter's ``bin`` first on ``PATH`` and
  ``OPENBLAS_NUM_THREADS=1``; a command expected to fail is written ``cmd || echo "exit code: $?"``.

A failing block is reported as ``file:line`` (the line of its opening fence) with the tail of its output.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINKS = ("models_zoo", "examples", "docs", "benchmarks")
EXECUTED = ("python", "bash")
#: info strings that look executable but are not: a likely mistake (write python/bash, or console/text)
AMBIGUOUS = frozenset({"py", "python3", "sh", "shell", "zsh", "Python", "Bash", "PYTHON", "BASH"})
BLOCK_TIMEOUT_S = 300
TAIL_CHARS = 3000

_FENCE_OPEN = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_SKIP = re.compile(r"^<!--\s*docs-test:\s*skip\s*\((?P<reason>.*\S.*)\)\s*-->$")
_DIRECTIVE = re.compile(r"^<!--\s*docs-test\b")


class DocsParseError(ValueError):
    """A malformed fence or ``docs-test`` comment."""


@dataclass(frozen=True)
class Block:
    """One fenced code block: ``line`` is the 1-based line of its opening fence."""

    line: int
    info: str
    code: str
    skip: str | None = None

    @property
    def lang(self) -> str | None:
        """``"python"`` or ``"bash"`` when the block is executed, else ``None``."""
        return self.info if self.info in EXECUTED else None


def parse_blocks(text: str, name: str = "<markdown>") -> list[Block]:
    """All fenced code blocks of a Markdown text, in order, with their skip reasons.

    A closing fence uses the opening fence's character, at least as many of them, and nothing else;
    an unclosed fence runs to the end of the text (CommonMark).  Up to the opening fence's indentation
    is removed from each content line.  A ``docs-test`` comment that is not a well-formed skip comment,
    or a skip comment that is not followed immediately by a fence, raises :class:`DocsParseError`.
    """
    lines = text.splitlines()
    blocks: list[Block] = []
    pending_skip: tuple[int, str] | None = None
    i = 0
    while i < len(lines):
        raw = lines[i]
        m = _FENCE_OPEN.match(raw)
        if m and not (m["fence"][0] == "`" and "`" in m["info"]):
            fence, indent = m["fence"], len(m["indent"])
            info = m["info"].strip()
            body: list[str] = []
            j = i + 1
            while j < len(lines):
                close = lines[j].lstrip(" ")
                if (len(lines[j]) - len(close) <= 3 and close.rstrip().startswith(fence)
                        and set(close.rstrip()) == {fence[0]}):
                    break
                body.append(_dedent(lines[j], indent))
                j += 1
            skip = None
            if pending_skip is not None and pending_skip[0] == i - 1:
                skip = pending_skip[1]
            pending_skip = None
            blocks.append(Block(line=i + 1, info=info, code="\n".join(body) + ("\n" if body else ""), skip=skip))
            i = j + 1
            continue
        stripped = raw.strip()
        if pending_skip is not None:
            raise DocsParseError(f"{name}:{pending_skip[0] + 1}: a docs-test skip comment must be followed "
                                 "immediately by an opening code fence")
        if _DIRECTIVE.match(stripped):
            s = _SKIP.match(stripped)
            if s is None:
                raise DocsParseError(f"{name}:{i + 1}: malformed docs-test comment {stripped!r}; "
                                     "write <!-- docs-test: skip (reason) -->")
            pending_skip = (i, s["reason"].strip())
        i += 1
    if pending_skip is not None:
        raise DocsParseError(f"{name}:{pending_skip[0] + 1}: a docs-test skip comment must be followed "
                             "immediately by an opening code fence")
    return blocks


def _dedent(line: str, indent: int) -> str:
    n = len(line) - len(line.lstrip(" "))
    return line[min(n, indent):]


def markdown_files() -> list[str]:
    """The documentation files whose blocks are run, relative to the repository root."""
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "models_zoo" / "README.md"]
    return [p.relative_to(ROOT).as_posix() for p in files if p.is_file()]


def _tail(text: str) -> str:
    text = text.rstrip()
    return text if len(text) <= TAIL_CHARS else "…" + text[-TAIL_CHARS:]


def _prepare_workdir(tmp: Path) -> None:
    for name in LINKS:
        if (ROOT / name).exists():
            (tmp / name).symlink_to(ROOT / name, target_is_directory=True)


def _bash_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["OPENBLAS_NUM_THREADS"] = "1"
    return env


@contextlib.contextmanager
def _alarm(seconds: int):
    """Raise TimeoutError in the main thread after ``seconds`` (where SIGALRM exists)."""
    if not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise TimeoutError(f"python block still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _run_python(block: Block, namespace: dict, path: Path, where: str) -> str | None:
    """Execute a Python block in ``namespace``; the failure message, or None.

    The code is compiled under the Markdown file's path and shifted to its line there, so that a
    traceback points at (and quotes) the failing line of the Markdown file itself.
    """
    out = io.StringIO()
    try:
        code = compile("\n" * block.line + block.code, str(path), "exec")
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out), _alarm(BLOCK_TIMEOUT_S):
            exec(code, namespace)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            return (f"{where}: python block called sys.exit({exc.code!r})\n"
                    f"--- output (tail) ---\n{_tail(out.getvalue())}")
    except BaseException as exc:  # noqa: BLE001 - report anything the block raised
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__.tb_next))
        return (f"{where}: python block failed\n--- output (tail) ---\n{_tail(out.getvalue())}\n"
                f"--- traceback ---\n{_tail(tb)}")
    return None


def _run_bash(block: Block, cwd: Path, where: str) -> str | None:
    """Run a bash block (``bash -e -o pipefail``); the failure message, or None."""
    try:
        p = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block.code], cwd=cwd, env=_bash_env(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                           text=True, timeout=BLOCK_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        out = exc.output.decode(errors="replace") if isinstance(exc.output, bytes) else (exc.output or "")
        return f"{where}: bash block timed out after {BLOCK_TIMEOUT_S} s\n--- output (tail) ---\n{_tail(out)}"
    if p.returncode != 0:
        return f"{where}: bash block exited with code {p.returncode}\n--- output (tail) ---\n{_tail(p.stdout)}"
    return None


def run_markdown(rel: str, workdir: Path) -> list[tuple[int, str, float]]:
    """Run the executable blocks of one file in ``workdir``; (line, lang, seconds) per block.

    Stops at the first failing block (later blocks may depend on it) with ``pytest.fail``.
    """
    text = (ROOT / rel).read_text(encoding="utf-8")
    _prepare_workdir(workdir)
    namespace: dict = {"__name__": "__docs__", "__file__": str(workdir / "docs_block.py")}
    timings = []
    old_cwd, old_env = os.getcwd(), dict(os.environ)
    os.chdir(workdir)
    os.environ.update(_bash_env())  # subprocesses started by Python blocks see the same PATH
    try:
        for block in parse_blocks(text, rel):
            if block.lang is None or block.skip is not None:
                continue
            where = f"{rel}:{block.line}"
            t0 = time.perf_counter()
            if block.lang == "python":
                failure = _run_python(block, namespace, ROOT / rel, where)
            else:
                failure = _run_bash(block, workdir, where)
            timings.append((block.line, block.lang, time.perf_counter() - t0))
            if failure is not None:
                pytest.fail(failure, pytrace=False)
    finally:
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(old_env)
    return timings


@pytest.mark.parametrize("rel", markdown_files())
def test_markdown_blocks_run(rel: str, tmp_path: Path) -> None:
    t0 = time.perf_counter()
    timings = run_markdown(rel, tmp_path)
    per_block = ", ".join(f"{line}:{lang} {s:.1f}s" for line, lang, s in timings) or "no executable blocks"
    print(f"{rel}: {time.perf_counter() - t0:.1f} s ({per_block})")


def test_docs_are_not_vacuous() -> None:
    """The documentation holds executable, non-skipped blocks of both kinds, so the test above can fail."""
    files = markdown_files()
    assert "README.md" in files and any(f.startswith("docs/") for f in files)
    run = [(f, b) for f in files for b in parse_blocks((ROOT / f).read_text(encoding="utf-8"), f)
           if b.lang is not None and b.skip is None]
    langs = {b.lang for _, b in run}
    assert langs == {"python", "bash"}, f"executed blocks by language: {sorted(langs)}"
    assert len(run) >= 5, f"only {len(run)} executable blocks in {files}"
    assert any(f == "README.md" for f, _ in run), "README.md has no executed block"


@pytest.mark.parametrize("rel", markdown_files())
def test_no_ambiguous_fences(rel: str) -> None:
    """``sh``/``py``/... fences are not run: label them ``bash``/``python`` (run) or ``console``/``text``."""
    bad = [f"{rel}:{b.line}: ```{b.info}" for b in parse_blocks((ROOT / rel).read_text(encoding="utf-8"), rel)
           if b.info.split(" ")[0] in AMBIGUOUS]
    assert not bad, "fences that look executable but are not run:\n" + "\n".join(bad)


_SAMPLE = """\
# Title

```python
x = 1
```

<!-- docs-test: skip (needs a GPU) -->
```bash
nvidia-smi
```

~~~bash
echo tilde
~~~

````text
```python
not a block of its own
```
````

- item

  ```python
  y = 2
    z = 3
  ```

```
no info string
```

```python title
not executed: the info string is not exactly python
```

```toml
a = 1
```
"""


def test_parse_blocks_sample() -> None:
    blocks = parse_blocks(_SAMPLE)
    assert [(b.line, b.info, b.lang, b.skip) for b in blocks] == [
        (3, "python", "python", None),
        (8, "bash", "bash", "needs a GPU"),
        (12, "bash", "bash", None),
        (16, "text", None, None),
        (24, "python", "python", None),
        (29, "", None, None),
        (33, "python title", None, None),
        (37, "toml", None, None),
    ]
    assert blocks[0].code == "x = 1\n"
    assert blocks[2].code == "echo tilde\n"
    assert blocks[3].code == "```python\nnot a block of its own\n```\n"
    assert blocks[4].code == "y = 2\n  z = 3\n"


@pytest.mark.parametrize("text", [
    "<!-- docs-test: skip -->\n```bash\ntrue\n```\n",          # no reason
    "<!-- docs-test: skpi (typo) -->\n```bash\ntrue\n```\n",   # unknown directive
    "<!-- docs-test: skip (x) -->\n\n```bash\ntrue\n```\n",    # not immediately before the fence
    "text\n<!-- docs-test: skip (x) -->\n",                    # dangling at the end
])
def test_parse_blocks_rejects_bad_directives(text: str) -> None:
    with pytest.raises(DocsParseError):
        parse_blocks(text)


def test_runner_reports_file_and_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing block is reported as file:line with its output; a skipped one does not run."""
    md = tmp_path / "sample.md"
    md.write_text("a\n\n```python\nv = 41\n```\n\n<!-- docs-test: skip (would fail) -->\n```bash\nfalse\n```\n\n"
                  "```bash\necho visible-output\ncertify check no-such-file.onnx || echo \"exit code: $?\"\n"
                  "exit 7\n```\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(pytest.fail.Exception) as info:
        run_markdown("sample.md", work)
    msg = str(info.value)
    assert "sample.md:12: bash block exited with code 7" in msg
    assert "visible-output" in msg and "exit code: 3" in msg


def test_runner_reports_python_failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Python blocks share one namespace; a traceback points at the Markdown line; sys.exit(0) passes."""
    md = tmp_path / "py.md"
    md.write_text("```python\nx = 2\n```\n\n```python\nimport sys\nif x == 2:\n    sys.exit(0)\n```\n\n"
                  "```python\nprint('before')\n1 / (x - 2)\n```\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(pytest.fail.Exception) as info:
        run_markdown("py.md", work)
    msg = str(info.value)
    assert "py.md:11: python block failed" in msg and "before" in msg
    assert f'File "{md}", line 13' in msg and "ZeroDivisionError" in msg and "1 / (x - 2)" in msg


def test_runner_times_out_python_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    md = tmp_path / "slow.md"
    md.write_text("```python\nimport time\ntime.sleep(30)\n```\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "BLOCK_TIMEOUT_S", 1)
    work = tmp_path / "work"
    work.mkdir()
    t0 = time.perf_counter()
    with pytest.raises(pytest.fail.Exception, match=r"slow.md:1: python block failed(.|\n)*TimeoutError"):
        run_markdown("slow.md", work)
    assert time.perf_counter() - t0 < 10
