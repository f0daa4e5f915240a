"""The evaluation report as a reviewer sees it: rendered by headless Chromium (no script error, the
verdict and the checks table on screen), and the check itself fails on a page with a script error."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from evaluation.gate import Thresholds, evaluation_gate
from evaluation.report import render
from evaluation.summary import summarize
from tests.browser import view
from tests.unit.test_evaluation_gate import MODEL, row


def report_page(tmp_path: Path) -> Path:
    rows = [row(i, "factual", "C", "A") for i in range(10)]
    rows += [row(100 + i, "numeric", "A", "C") for i in range(10)]
    rows += [row(200 + i, "unanswerable", "A", "A") for i in range(5)]
    summary = summarize(rows)
    verdict = evaluation_gate(summary, Thresholds(min_type_a_rate=0.3))
    page = tmp_path / "report.html"
    page.write_text(
        render(
            summary, verdict, rows, model=MODEL, staged="2", live="1", judge="reference", min_type_a_rate=0.3
        )
    )
    return page


def test_the_report_renders_with_its_verdict_and_checks_table(tmp_path: Path) -> None:
    seen = view(report_page(tmp_path), tmp_path / "report.png")
    assert seen.script_errors == []
    assert "Verdict: FAIL" in seen.dom
    checks = seen.dom[seen.dom.index("<h2>Checks</h2>") :]
    assert "a_rate[factual].estimate" in checks and "FAILED" in checks
    assert 'id="weak-types"' in seen.dom and 'id="answers"' in seen.dom
    image = Image.open(seen.screenshot).convert("RGB")
    assert image.size == (1400, 1000)
    colours = image.getcolors(maxcolors=1_000_000) or []
    assert len(colours) > 50  # text and tables were drawn, not a blank page
    drawn = {colour: count for count, colour in colours}
    assert drawn.get((0xA3, 0x15, 0x15), 0) > 100  # the FAIL verdict's red is on screen
    assert drawn.get((0xFF, 0xF4, 0xD6), 0) > 1000  # and the flagged question type's highlight


def test_the_browser_check_reports_a_script_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.html"
    broken.write_text(
        report_page(tmp_path).read_text().replace("</body>", "<script>undefinedCall();</script></body>")
    )
    seen = view(broken, tmp_path / "broken.png")
    assert seen.script_errors and "undefinedCall" in seen.script_errors[0]
