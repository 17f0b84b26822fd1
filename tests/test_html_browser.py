"""The HTML report opens in a real browser (headless Chromium) and renders something visible.

Skipped when Chromium is not installed (CI installs it; ``apt-get install chromium``).
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from test_report import sample_reports

from certify.report.html import render_html

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_html_report_renders_in_headless_chromium(tmp_path):
    import matplotlib.image as mpimg

    page = tmp_path / "report.html"
    page.write_text(render_html(list(sample_reports().values())), encoding="utf-8")
    png = tmp_path / "shot.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={png}",
           "--window-size=1000,800", page.as_uri()]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert png.exists(), p.stderr[-2000:]
    img = mpimg.imread(str(png))
    assert img.shape[0] >= 700 and img.shape[1] >= 900
    rgb = img[..., :3]
    assert float(rgb.std()) > 0.02  # not a blank page
    # the green "certified" badge of the first report is on screen
    green = (rgb[..., 1] > 0.4) & (rgb[..., 0] < 0.3) & (rgb[..., 2] < 0.3)
    assert green.sum() > 50
