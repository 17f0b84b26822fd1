"""User-facing text cites published work, never the team's internal notes (issue #17, item 3).

Users get the package and docs/ only, so neither may point at documents they cannot read: the seed
papers by number, the research notes (lure / stability / engineering notes, plants.md, DESIGN.md) or
their bracketed reference keys.  Citations in the docs ("Author (Year)", "Author et al. (Year)",
"Author & Author (Year)") must name an entry of docs/references.md.
"""

from __future__ import annotations

import bisect
import itertools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
REFERENCES = DOCS / "references.md"

#: what users receive or read: the package (code and data), the docs, the README, the bundled models'
#: scripts, the examples and the benchmarks
SCANNED = ("certify", "docs", "README.md", "models_zoo", "examples", "benchmarks")
TEXT_SUFFIXES = {".py", ".pyi", ".md", ".toml", ".json", ".txt", ".rst", ".html", ".css", ".js", ".cfg",
                 ".ini", ".yaml", ".yml", ".csv", ".svg", ".typed"}

#: citations of internal documents (case-insensitive)
FORBIDDEN = {
    "seed paper by number": r"\bseed 00[0-4]\b",
    "seed papers": r"\bseed papers?\b",
    "seeds folder": r"(?<![\w.-])seeds?/",
    "lure notes": r"\blure[ _-]notes?\b",
    "stability notes": r"\bstability[ _-]notes?\b",
    "engineering notes": r"\bengineering[ _-]notes?\b",
    "research notes": r"\bresearch[ _-]notes?\b",
    "notes section": r"\bnotes §",
    "plants.md": r"\bplants\.md\b",
    "stability_conditions.md": r"\bstability_conditions\b",
    "lure_lmi_and_snof.md": r"\blure_lmi_and_snof\b",
    "lmi_engineering.md": r"\blmi_engineering\b",
    "DESIGN.md": r"\bDESIGN\.md\b",
    "seed reference key": r"\[00[0-4]\]",
}
_FORBIDDEN_RE = re.compile("|".join(f"(?P<k{i}>{p})" for i, p in enumerate(FORBIDDEN.values())), re.I)
_FORBIDDEN_NAMES = list(FORBIDDEN)


def _scanned_files() -> list[Path]:
    files: list[Path] = []
    for name in SCANNED:
        top = ROOT / name
        if top.is_file():
            files.append(top)
        elif top.is_dir():
            files += [p for p in top.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES
                      and "__pycache__" not in p.parts and not any(part.startswith(".") for part in
                                                                   p.relative_to(ROOT).parts)]
    return sorted(files)


def forbidden_hits(path: Path, root: Path = ROOT) -> list[str]:
    """``file:line: what — text`` for every citation of an internal document in ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return []
    hits = []
    for n, line in enumerate(text.splitlines(), 1):
        for m in _FORBIDDEN_RE.finditer(line):
            what = _FORBIDDEN_NAMES[int(m.lastgroup[1:])]
            hits.append(f"{path.relative_to(root)}:{n}: {what} — {line.strip()[:140]}")
    return hits


def test_scanned_tree_is_not_empty() -> None:
    files = {p.relative_to(ROOT).as_posix() for p in _scanned_files()}
    assert "README.md" in files and "docs/theory.md" in files and "docs/references.md" in files
    assert any(f.startswith("certify/") and f.endswith(".py") for f in files)
    assert any(f.startswith("certify/") and f.endswith(".json") for f in files)


def test_no_user_facing_text_cites_internal_notes_or_seeds() -> None:
    hits = [h for p in _scanned_files() for h in forbidden_hits(p)]
    assert not hits, ("user-facing text cites internal documents; cite docs/references.md entries "
                      "(author, year, equation) or docs/theory.md sections instead:\n" + "\n".join(hits))


@pytest.mark.parametrize("text", [
    "see lure notes §2.3", "(stability notes §1.1)", "as in seed 004's gR-SS-NN",
    "Stability_conditions.md §2",
    "`lure_lmi_and_snof.md`", "lmi_engineering.md (b)", "DESIGN.md", "the research notes", "[003] Bonassi",
    "seeds/README.md", "(notes §5.4)", "the seed papers", "lure-notes test vectors",
])
def test_forbidden_patterns_catch(text: str, tmp_path: Path) -> None:
    p = tmp_path / "probe.md"
    p.write_text(text + "\n", encoding="utf-8")
    hits = forbidden_hits(p, tmp_path)
    assert len(hits) == 1 and hits[0].startswith("probe.md:1: "), (text, hits)


@pytest.mark.parametrize("text", [
    "random seed 0", "seed=7", "(seed 0). It uses", "docs/theory.md §7.3", "release notes", "notes: []",
    "Bonassi, Farina & Scattolini (2021) eq. (14)", "x[0]", "seeds, one per run", "reseeds/",
])
def test_forbidden_patterns_spare_ordinary_text(text: str) -> None:
    assert not _FORBIDDEN_RE.search(text), text


# --- citations name an entry of docs/references.md --------------------------------------------------

#: a surname, with an optional particle ("El Ghaoui", "van der Schaft")
_NAME = r"(?:(?:El|Le|La|De|Di|Du|Van|Von|de|van|von|der) )*[A-ZÀ-Þ][a-zß-ÿ]+(?:-[A-ZÀ-Þ][a-zß-ÿ]+)?"
_YEAR = r"(?:19|20)\d\d"
#: "A et al. (Y)" / "A et al. Y" / "A & B (Y)" / "A, B & C, Y" and "A (Y)" (single name: parentheses only)
_CITE = re.compile(
    rf"(?P<etal>{_NAME}) et al\.,? \(?(?P<y1>{_YEAR})[a-z]?(?=[),;:.\s]|$)"
    rf"|(?P<list>{_NAME}(?:, {_NAME})* (?:&|and) {_NAME}),? \(?(?P<y2>{_YEAR})[a-z]?(?=[),;:.\s]|$)"
    rf"|(?P<one>{_NAME}) \((?P<y3>{_YEAR})[a-z]?(?=[),;])"
)
_ENTRY = re.compile(r"^- \*\*(?P<who>.+?),? \((?P<year>\d{4})\)\.\*\*", re.M)


def reference_entries(text: str) -> set[tuple[tuple[str, ...], str]]:
    """``{((surname, …), year)}`` of the bold entry heads in references.md (``et al.`` kept as a name)."""
    out = set()
    for m in _ENTRY.finditer(text):
        who = m.group("who").replace(" et al.", ", et al.")
        names = tuple(n.strip() for n in re.split(r",\s*|\s+&\s+|\s+and\s+", who) if n.strip())
        out.add((names, m.group("year")))
    return out


def citations(text: str) -> list[tuple[int, str, tuple[str, ...], str, bool]]:
    """``(line, cited text, surnames, year, et_al)`` for every author–year citation in ``text``."""
    lines = [line.strip() for line in text.splitlines()]
    starts = list(itertools.accumulate((len(line) + 1 for line in lines), initial=0))
    joined = " ".join(lines)  # citations wrap across lines
    found = []
    for m in _CITE.finditer(joined):
        n = bisect.bisect_right(starts, m.start())
        if m.group("etal"):
            found.append((n, m.group(0), (m.group("etal"),), m.group("y1"), True))
        elif m.group("list"):
            names = tuple(re.split(r", | & | and ", m.group("list")))
            found.append((n, m.group(0), names, m.group("y2"), False))
        else:
            found.append((n, m.group(0), (m.group("one"),), m.group("y3"), False))
    return found


def resolves(names: tuple[str, ...], year: str, et_al: bool, entries: set) -> bool:
    for e_names, e_year in entries:
        if e_year != year:
            continue
        if et_al and e_names[0] == names[0] and (e_names[-1] == "et al." or len(e_names) >= 3):
            return True
        if not et_al:
            # a list match may have swallowed a capitalised word before it ("Elman, Miller & Hardt")
            if any(names[i:] == e_names for i in range(len(names))):
                return True
            if len(names) == 1 and e_names == (names[0],):
                return True
    return False


def test_reference_entries_parse() -> None:
    entries = reference_entries(REFERENCES.read_text(encoding="utf-8"))
    assert (("Bonassi", "Farina", "Scattolini"), "2021") in entries
    assert (("Hilgert", "Schwung"), "2025") in entries
    assert (("Bonassi", "et al."), "2023") in entries
    assert (("Krawczyk",), "1969") in entries
    assert len(entries) >= 15


def test_citation_regex() -> None:
    got = citations("Bonassi, Farina & Scattolini (2021) (14); Hilgert & Schwung (2025, arXiv 2505.11539) "
                    "and Tan et al. 2005) or Bell & Åström (1987), Terzi et al. (2021), Krawczyk (1969); "
                    "Kim, Rios-Patron & Braatz (2018). Python 3.11 (ONNX 2023) the table (2021) GRU (2014)")
    assert [(c[2], c[3], c[4]) for c in got] == [
        (("Bonassi", "Farina", "Scattolini"), "2021", False), (("Hilgert", "Schwung"), "2025", False),
        (("Tan",), "2005", True), (("Bell", "Åström"), "1987", False), (("Terzi",), "2021", True),
        (("Krawczyk",), "1969", False), (("Kim", "Rios-Patron", "Braatz"), "2018", False)]
    wrapped = citations("a\nsee Hilgert &\n   Schwung (2025) and\nSmith (2020).")
    assert [(c[0], c[2], c[3]) for c in wrapped] == [(2, ("Hilgert", "Schwung"), "2025"),
                                                     (4, ("Smith",), "2020")]
    entries = {(("Miller", "Hardt"), "2019"), (("Tan", "et al."), "2005")}
    assert resolves(("Elman", "Miller", "Hardt"), "2019", False, entries)
    assert resolves(("Tan",), "2005", True, entries)
    assert not resolves(("Miller", "Hardt"), "2018", False, entries)
    assert not resolves(("Miller",), "2019", True, entries)


DOC_PAGES = sorted(p for p in DOCS.glob("*.md") if p != REFERENCES) + [ROOT / "README.md"]


@pytest.mark.parametrize("page", DOC_PAGES, ids=lambda p: p.name)
def test_doc_citations_are_in_references(page: Path) -> None:
    entries = reference_entries(REFERENCES.read_text(encoding="utf-8"))
    missing = [f"{page.relative_to(ROOT)}:{n}: {cited!r}"
               for n, cited, names, year, et_al in citations(page.read_text(encoding="utf-8"))
               if not resolves(names, year, et_al, entries)]
    assert not missing, "citations without an entry in docs/references.md:\n" + "\n".join(missing)


def test_theory_and_index_cite_papers() -> None:
    for name in ("theory.md", "index.md"):
        assert citations((DOCS / name).read_text(encoding="utf-8")), name
