"""``evofool report``: a self-contained HTML folder, checked in a real headless browser."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evofool.cli import main
from evofool.config import load_experiment
from evofool.errors import EvofoolError
from evofool.report import write_report
from evofool.runner import run_experiment
from conftest import small_experiment

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def chromium() -> str:
    """Debian's chromium (installed by .ci/run); skipped loudly when absent, unless
    EVOFOOL_REQUIRE_CHROMIUM=1 (CI) makes that a failure."""
    path = os.environ.get("EVOFOOL_CHROMIUM") or shutil.which("chromium")
    if path:
        return path
    if os.environ.get("EVOFOOL_REQUIRE_CHROMIUM") == "1":
        pytest.fail("chromium is required (EVOFOOL_REQUIRE_CHROMIUM=1) but not installed")
    pytest.skip("chromium not installed (apt-get install chromium); browser check not run")


def browse(browser: str, page: Path, tmp_path: Path, *action: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
         "--window-size=1300,1600", "--virtual-time-budget=5000", *action, page.as_uri()],
        capture_output=True, text=True, timeout=120)


@pytest.fixture(params=["direct", "cppn"])
def finished_run(request, tmp_path) -> Path:
    path = small_experiment(tmp_path, genome={"type": request.param},
                            budget={"generations": 5})
    run_experiment(load_experiment(path))
    return tmp_path / "run"


def test_report_opens_in_a_browser_with_every_class_and_plot(finished_run, tmp_path):
    browser = chromium()
    index = write_report(finished_run)
    assert index == finished_run / "report" / "index.html"
    dom = browse(browser, index, tmp_path, "--dump-dom").stdout
    tiles = re.findall(r'<figure class="tile[^"]*" data-class="(\d+)"', dom)
    assert sorted(map(int, tiles)) == list(range(10))
    for digit in range(10):
        assert re.search(rf'class="label">{digit}</span><br>\d+\.\d\d%', dom), digit
    assert 'data-missing-images="0"' in dom
    assert 'data-loaded-images="12"' in dom  # 10 elites + 2 plots, all decoded

    shot = tmp_path / "shot.png"
    browse(browser, index, tmp_path, f"--screenshot={shot}")
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (1600, 1300)
    grid_band = pixels[330:450]  # the elite grid sits under the facts table
    assert grid_band.std() > 40, "the screenshot shows no elite images"


def test_report_gives_each_class_its_evaluations_to_each_milestone(finished_run):
    import json
    rows = json.loads((finished_run / "archive" / "archive.json").read_text())["classes"]
    page = write_report(finished_run).read_text()
    assert "<th>evaluations to 50%</th>" in page and "<th>evaluations to 99.99%</th>" in page
    for row in rows:  # each class's cells, in order: ... evaluations, then the four milestones
        counts = ["-" if v is None else str(v) for v in row["evaluations_to"].values()]
        cells = "".join(f"<td>{c}</td>" for c in counts)
        found = "-" if row["evaluations"] is None else row["evaluations"]
        assert f"<td>{found}</td>{cells}" in page, row["class"]


def test_report_folder_is_self_contained(finished_run, tmp_path):
    index = write_report(finished_run, tmp_path / "elsewhere")
    shutil.rmtree(finished_run)
    html = index.read_text()
    sources = re.findall(r'src="([^"]+)"', html)
    assert len(sources) == 12
    for source in sources:
        assert not source.startswith(("http", "/", "..")) and (index.parent / source).is_file()


def test_report_of_missing_or_corrupted_run_is_a_one_line_error(tmp_path, capsys):
    assert main(["report", str(tmp_path / "none")]) == 2
    assert "does not exist" in capsys.readouterr().err
    path = small_experiment(tmp_path, budget={"generations": 2})
    run_experiment(load_experiment(path))
    run = tmp_path / "run"
    log = (run / "log.jsonl").read_text()
    (run / "log.jsonl").write_text('{"generation": 0}\nnot json\n{"generation": 2}\n')
    with pytest.raises(EvofoolError, match="line 2 is not JSON"):
        write_report(run)
    (run / "log.jsonl").write_text(log)
    (run / "archive" / "archive.json").write_text("{")
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert "archive.json" in err and "corrupted" in err and "\n" not in err


def test_report_says_whether_the_run_finished(tmp_path, monkeypatch):
    for folder in ("done", "crashed"):
        (tmp_path / folder).mkdir()
    done = small_experiment(tmp_path / "done", output_dir=str(tmp_path / "done" / "run"),
                            budget={"generations": 2}, description="two generations")
    run_experiment(load_experiment(done))
    page = write_report(tmp_path / "done" / "run").read_text()
    assert "<th>status</th><td>finished</td>" in page and "(unfinished)" not in page
    assert "two generations" in page
    monkeypatch.setenv("EVOFOOL_TEST_STOP", "raise@4")  # a crash in the 3rd generation
    crashed = small_experiment(tmp_path / "crashed", model="python:plugin_models:stopping_tiny_net",
                               output_dir=str(tmp_path / "crashed" / "run"))
    with pytest.raises(RuntimeError, match="injected failure"):
        run_experiment(load_experiment(crashed))
    page = write_report(tmp_path / "crashed" / "run").read_text()
    assert "evofool run: tiny (unfinished)" in page
    assert "unfinished: stopped early" in page


def test_report_shows_the_ablation_when_there_is_one(tmp_path):
    path = small_experiment(tmp_path, genome={"type": "cppn"}, budget={"generations": 2})
    run_experiment(load_experiment(path))
    run = tmp_path / "run"
    page = write_report(run).read_text()
    assert "Ablation" not in page and not (run / "report" / "ablation.png").exists()
    assert main(["ablate", str(run), "--device", "cpu", "--grid", "2", "--max-copies", "2",
                 "--orders", "1"]) == 0
    index = write_report(run, tmp_path / "elsewhere")
    page = index.read_text()
    assert '<h2 id="ablation">Ablation</h2>' in page and "on lenet-mnist: grid 2 x" in page
    section = page[page.index('id="ablation"'):page.index("<h2>Configuration")]
    assert section.count("<tr>") == 11 and "kept50 greedy" in section  # heading + 10 classes
    assert '<img src="ablation.png"' in section
    assert (index.parent / "ablation.png").read_bytes() == (
        run / "ablation" / "ablation.png").read_bytes()
    assert len(re.findall(r'src="([^"]+)"', page)) == 13  # 10 elites, 2 plots, the ablation
    browser = os.environ.get("EVOFOOL_CHROMIUM") or shutil.which("chromium")
    if browser:  # (the browser test above fails loudly where CI requires one)
        dom = browse(browser, index, tmp_path, "--dump-dom").stdout
        assert 'data-missing-images="0"' in dom and 'data-loaded-images="13"' in dom


def test_a_broken_ablation_is_a_one_line_report_error(tmp_path, capsys):
    path = small_experiment(tmp_path, budget={"generations": 2})
    run_experiment(load_experiment(path))
    run = tmp_path / "run"
    (run / "ablation").mkdir()
    (run / "ablation" / "ablation.json").write_text(
        '{"model": "m", "grid": 4, "max_copies": 2, "orders": 1, '
        '"classes": [{"summary": {"class": 0, "name": "0", "confidence": "high"}}]}')
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert "ablation.json': classes[0].summary.confidence is the string 'high'" in err
    assert "\n" not in err
    (run / "ablation" / "ablation.json").unlink()
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    (run / "ablation" / "ablation.json").symlink_to(outside)
    with pytest.raises(EvofoolError, match="leads outside the run directory"):
        write_report(run)
