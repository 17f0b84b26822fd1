"""The HTML report opens in a real browser (headless Chromium) and renders something visible.

Skipped when Chromium is not installed (CI installs it; ``apt-get install chromium``).
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
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


# ---------------------------------------------------------------------------------------------------
# real reports, one per kind, rendered and looked at


def _real_reports(tmp_path):
    from _loop_cases import RELAY_LOOP, bypass_net

    import certify
    from certify.networks import ElmanLayer, Network

    calm = Network(layers=(ElmanLayer(W=[[0.5]], U=[[0.3]], b=[0.0]),))
    bistable = Network(layers=(ElmanLayer(W=[[0.0]], U=[[2.0]], b=[0.0]),))
    loop = tmp_path / "osc.toml"
    loop.write_text(RELAY_LOOP.format(kp=50.0, ki=20.0))
    bypass = bypass_net()
    return {
        "certified": certify.check(calm, method="diss"),
        "not_certified_loop": certify.check("models_zoo/boiler_lpgrnn_plain.onnx", plant="boiler"),
        "unstable": certify.check(bistable),
        "unstable_loop": certify.check(bypass, loop=str(loop)),
    }


def _shoot(page, tmp_path, name, height=2400):
    png = tmp_path / f"{name}.png"
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / ('profile-' + name)}"]
    p = subprocess.run(base + [f"--screenshot={png}", f"--window-size=1100,{height}", page.as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert png.exists(), p.stderr[-2000:]
    dom = page.read_text(encoding="utf-8")  # a static page (no scripts): the file is the DOM Chromium drew
    import matplotlib.image as mpimg

    return mpimg.imread(str(png))[..., :3], dom


_BADGE = {"certified": (0.18, 0.49, 0.20), "not_certified": (0.94, 0.42, 0.0), "unstable": (0.78, 0.16, 0.16)}


def _has_color(rgb, color, n=200, tol=0.06):
    return int((np.abs(rgb - np.array(color)).max(axis=-1) < tol).sum()) >= n


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_each_kind_of_report_shows_its_verdict_tables_and_plots(tmp_path):
    reports = _real_reports(tmp_path)
    for name, report in reports.items():
        verdict = report.verdict.value
        page = tmp_path / f"{name}.html"
        page.write_text(report.to_html(), encoding="utf-8")
        rgb, dom = _shoot(page, tmp_path, name)
        assert _has_color(rgb, _BADGE[verdict]), (name, "verdict badge not visible")
        assert 'id="verdict"' in dom and 'class="card' in dom
        assert '<table class="kv">' in dom and '<table class="checks">' in dom  # tables, not JSON dumps
        assert dom.count("<svg") >= 1  # at least the margins
        if verdict != "certified":
            assert "What next" in dom
        if name.startswith("unstable"):
            assert "Counterexample" in dom and "Krawczyk" in dom
        if name == "unstable_loop":
            assert "Counterexample trajectory" in dom and dom.count("<svg") >= 3
        if name == "not_certified_loop":
            assert "time t [s]" in dom  # loop simulations are in seconds
            assert "reference" in dom and "actuator limits" in dom  # many starts against the set-point and limits
            assert "Absorbing set" in dom  # the proved absorbing box, as a table
    # several models on one page: a summary table first
    page = tmp_path / "batch.html"
    page.write_text(render_html(list(reports.values())), encoding="utf-8")
    rgb, dom = _shoot(page, tmp_path, "batch", height=1200)
    assert '<table class="overview">' in dom and dom.count('class="verdict v-') >= 8
    for color in _BADGE.values():
        assert _has_color(rgb, color, n=100)
