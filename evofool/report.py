"""``evofool report RUN_DIR``: one self-contained HTML folder per run, opened from disk.

The folder holds ``index.html``, the elite images (copied), and two matplotlib plots: best
and median confidence per generation, and coverage (classes above 50/90/99/99.99%) over
evaluations. When ``evofool ablate`` has written ``RUN_DIR/ablation/ablation.json``, the page
also has an "Ablation" section: its summary table and its plot (copied as ablation.png). The
page needs no server and no network. The elite grid can be sorted by class or confidence;
past 200 classes it is paged and thumbnails load lazily, so 1,000 ImageNet classes stay
usable.

The run directory may come from a stranger: the report takes from it only the elite PNGs
named as :func:`~evofool.archive_store.png_name` names them (regular files inside the run
directory that start like a PNG, never a path written in archive.json), everything written
into the page is escaped, and nothing is written outside the report folder (a ``report``
folder or file in the run directory that is a symbolic link is refused).
"""
from __future__ import annotations

import html
import json
import os
import stat
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from evofool import ablation
from evofool.archive_store import png_name
from evofool.errors import EvofoolError
from evofool.files import atomic_path, write_text
from evofool.montage import confidence_label
from evofool.run_data import RunData, check_archive_inside, read_run
from evofool.search.archive import MILESTONES

MILESTONE_KEYS = tuple(f"{level:g}" for level in MILESTONES)  # archive.json's evaluations_to

PAGE_SIZE = 200
MAX_PNG_BYTES = 64 << 20  # an elite PNG copied into the report
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
THRESHOLDS = (("above_0.5", "50%"), ("above_0.9", "90%"), ("above_0.99", "99%"),
              ("above_0.9999", "99.99%"))


def _plot_confidence(run: RunData, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # the run-wide step: the GA restarts its generation count for each target class
    generations = np.array([r.get("step", r["generation"]) for r in run.log])
    best = np.stack([r["best"] for r in run.log])  # (records, classes), NaN for empty
    batch = np.stack([r["batch_median"] for r in run.log])
    figure, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for axis, values, title in ((axes[0], best, "best (elite) confidence per class"),
                                (axes[1], batch, "median confidence of each generation")):
        if values.shape[1] <= 20:
            for column in range(values.shape[1]):
                axis.plot(generations, values[:, column], lw=1,
                          label=_plain(run.archive.class_names[column][:12]))
        else:  # many classes: the spread, not a thousand lines
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a generation of empty cells
                low, mid, high = np.nanpercentile(values, [10, 50, 90], axis=1)
            axis.fill_between(generations, low, high, alpha=0.3, label="10-90th percentile")
            axis.plot(generations, mid, lw=1.5, label="median over classes")
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("generation (all target classes in turn, for the GA)"
                        if "target_class" in run.log[-1] else "generation")
        axis.set_ylim(-0.02, 1.02)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("softmax confidence")
    axes[1].legend(fontsize=7, ncol=2, loc="lower right")
    figure.tight_layout()
    _save_figure(figure, path)
    plt.close(figure)


def _plot_coverage(run: RunData, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evaluations = [r["evaluations"] for r in run.log]
    figure, axis = plt.subplots(figsize=(11, 3.4))
    for key, label in THRESHOLDS:
        axis.plot(evaluations, [r[key] for r in run.log], lw=1.5, label=f">= {label}")
    axis.set_xlabel("evaluations")
    axis.set_ylabel("classes")
    axis.set_ylim(0, len(run.archive) * 1.05)
    axis.set_title("coverage: classes at or above each confidence", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    _save_figure(figure, path)
    plt.close(figure)


def _plain(text: str) -> str:
    """A class name as matplotlib text: no mathtext (a '$' would start a formula)."""
    return text.replace("$", r"\$")


def _save_figure(figure, path: Path) -> None:
    with atomic_path(path) as tmp:  # replaces a link at ``path``, never writes through it
        figure.savefig(tmp, dpi=90, format="png")


def _rows(run: RunData) -> list[dict]:
    """Per class, from the checked archive: the cell's class id, name, confidences, when it
    was found, the file name of its PNG (built here, by class) and the genome's size."""
    rows = []
    for row in run.archive_json["classes"]:
        cls = row["class"]
        filled = row["confidence"] is not None
        rows.append({
            "class": row["class_id"], "name": row["name"], "confidence": row["confidence"],
            "png_confidence": row.get("png_confidence"), "generation": row["generation"],
            "evaluations": row["evaluations"],
            "evaluations_to": row.get("evaluations_to") or {},  # query accounting
            "measures": row.get("measures") or {},  # a perturbation's distortion
            "png": png_name(row["class_id"], row["name"]) if filled else None,
            "size": run.genome_type.describe(run.archive.genomes[cls]) if filled else "",
        })
    return rows


def _cell(value) -> str:
    return "-" if value is None else html.escape(str(value))


def _text(value: Any) -> str:
    """Any value as escaped HTML text (attribute-safe: quotes are escaped too)."""
    return html.escape(str(value), quote=True)


def _confidence(value: float | None, decimals: int = 2) -> str:
    return "-" if value is None else _text(confidence_label(value, decimals))


def _config_value(config: dict, section: str, key: str) -> Any:
    value = config.get(section)
    if section == "model" and isinstance(value, str):  # "model: lenet-mnist"
        return value if key == "spec" else None
    found = value.get(key) if isinstance(value, dict) else None
    if section == "model" and key == "spec" and isinstance(found, list):  # an ensemble
        return f"{value.get('ensemble', 'min')} of " + ", ".join(map(str, found))
    return found


def _measure(value) -> str:
    """A distortion: a count of pixels as an integer, a norm to 4 decimals."""
    if not isinstance(value, (int, float)) or value != value:
        return "-"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:.4f}"


def _number(info: dict, key: str, form: str) -> str | None:
    value = info.get(key)
    return None if value is None else format(value, form)


def _ablation_section(found: tuple[dict, list[dict], bool] | None) -> str:
    """The "Ablation" section: ablation.json's summary table and its plot, or nothing."""
    if found is None:
        return ""
    settings, rows, has_plot = found
    heads = "".join(f"<th>{_text(h)}</th>" for h in ablation.SUMMARY_COLUMNS.values())
    body = "\n".join("<tr>" + "".join(f"<td>{_text(ablation.cell_text(key, row[key]))}</td>"
                                       for key in ablation.SUMMARY_COLUMNS) + "</tr>"
                     for row in rows)
    plot = ('<p><img src="ablation.png" alt="confidence vs fraction kept and vs copies, per '
            'class"></p>' if has_plot else "")
    return f"""<h2 id="ablation">Ablation</h2>
<p>evofool ablate on {_text(settings["model"])}: grid {_text(settings["grid"])} x
{_text(settings["grid"])}, {_text(settings["orders"])} random orders, up to
{_text(settings["max_copies"])} x {_text(settings["max_copies"])} copies.
{_text(ablation.LEGEND)}.</p>
<table><tr>{heads}</tr>
{body}
</table>
{plot}
"""


def _page(run: RunData, rows: list[dict],
          ablated: tuple[dict, list[dict], bool] | None = None) -> str:
    summary = run.archive_json["summary"]
    info = run.info
    title = _text(run.config.get("name", run.run_dir.name))
    measure_names = list(next((row["measures"] for row in rows if row["measures"]), {}))
    tiles = []
    for row in rows:
        confidence = row["confidence"] if row["confidence"] is not None else -1
        label = f"{row['class']} {row['name']}" if row["name"] != str(row["class"]) else row["name"]
        image = (f'<img src="img/{_text(row["png"])}" alt="class {_text(row["class"])}" '
                 f'loading="lazy" width="112" height="112">' if row["png"]
                 else '<div class="empty">empty</div>')
        tiles.append(
            f'<figure class="tile" data-class="{_text(row["class"])}" '
            f'data-confidence="{_text(confidence)}">'
            f'{image}<figcaption><span class="label">{_text(label)}</span><br>'
            f'{_confidence(row["confidence"]) if row["confidence"] is not None else "empty"}'
            '</figcaption></figure>')
    table = "\n".join(
        f"<tr><td>{_text(row['class'])}</td><td>{_text(row['name'])}</td>"
        f"<td>{_confidence(row['confidence'], 6)}</td>"
        f"<td>{_confidence(row['png_confidence'], 6)}</td>"
        f"<td>{_cell(row['generation'])}</td><td>{_cell(row['evaluations'])}</td>"
        + "".join(f"<td>{_cell(row['evaluations_to'].get(m))}</td>" for m in MILESTONE_KEYS)
        + "".join(f"<td>{_measure(row['measures'].get(m))}</td>" for m in measure_names)
        + f"<td>{_text(row['size'])}</td></tr>" for row in rows)
    reached_heads = "".join(f"<th>evaluations to {float(m) * 100:g}%</th>" for m in MILESTONE_KEYS)
    reached_heads += "".join(f"<th>distortion {_text(m.replace('_', ' '))}</th>"
                             for m in measure_names)
    finished = info.get("finished")
    status = ("finished" if finished else
              "unfinished: stopped early; 'evofool run --resume RUN_DIR' continues it"
              if finished is False else None)
    description = run.config.get("description")
    facts = [("status", status)] + ([("description", description)] if description else []) + [
             ("genome", _config_value(run.config, "genome", "type")),
             ("model", _config_value(run.config, "model", "spec")),
             ("algorithm", _config_value(run.config, "algorithm", "type")),
             ("generations", run.log[-1]["generation"]),
             ("evaluations", f"{run.log[-1]['evaluations']:,}"),
             ("wall time", f"{info['wall_time_s']:.1f} s"
              if info.get("wall_time_s") is not None else None),
             ("evaluations/s", _number(info, "evaluations_per_s", ",.0f")),
             ("device", info.get("device")),
             ("classes filled", f"{summary['filled']} / {summary['classes']}"),
             ("median confidence", f"{summary['median']:.6f}"),
             (">= 99% / >= 99.99%", f"{summary['above_0.99']} / {summary['above_0.9999']}")
    ]
    fact_rows = "".join(f"<tr><th>{_text(k)}</th><td>{_cell(v)}</td></tr>"
                        for k, v in facts)
    try:
        config = _text(yaml.safe_dump(run.config, sort_keys=False))
    except (yaml.YAMLError, RecursionError, ValueError, TypeError) as exc:
        raise EvofoolError(f"'{run.run_dir / 'config.yaml'}' cannot be shown "
                           f"({type(exc).__name__}); expected plain YAML data") from None
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>evofool report: {title}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
h1 {{ font-size: 1.4em; }} h2 {{ font-size: 1.1em; margin-top: 1.5em; }}
table {{ border-collapse: collapse; font-size: 0.85em; }}
td, th {{ border: 1px solid #ccc; padding: 2px 8px; text-align: left; }}
#grid {{ display: flex; flex-wrap: wrap; gap: 6px; }}
.tile {{ margin: 0; width: 116px; font-size: 0.75em; text-align: center; }}
.tile img, .empty {{ width: 112px; height: 112px; image-rendering: pixelated;
  border: 1px solid #999; display: block; margin: auto; }}
.empty {{ line-height: 112px; color: #999; }}
.hidden {{ display: none; }}
pre {{ background: #f6f6f6; padding: 0.6em; font-size: 0.8em; }}
</style></head>
<body data-classes="{len(rows)}">
<h1>evofool run: {title}{" (unfinished)" if finished is False else ""}</h1>
<table>{fact_rows}</table>
<h2>Elites</h2>
<p>Sort: <button id="by-class">by class</button> <button id="by-confidence">by confidence</button>
<span id="pager"></span></p>
<div id="grid">
{"".join(tiles)}
</div>
<h2>Confidence per generation</h2>
<img src="confidence.png" alt="best and median confidence per generation">
<h2>Coverage</h2>
<img src="coverage.png" alt="classes above 50/90/99/99.99% over evaluations">
<h2>Per class</h2>
<table><tr><th>class</th><th>name</th><th>confidence</th><th>PNG confidence</th>
<th>generation</th><th>evaluations</th>{reached_heads}<th>genome size</th></tr>
{table}
</table>
{_ablation_section(ablated)}<h2>Configuration</h2>
<pre>{config}</pre>
<script>
const grid = document.getElementById("grid");
const tiles = Array.from(grid.children);
const pageSize = {PAGE_SIZE};
let page = 0;
function show() {{
  const pages = Math.ceil(tiles.length / pageSize);
  Array.from(grid.children).forEach((tile, i) =>
    tile.classList.toggle("hidden", Math.floor(i / pageSize) !== page));
  const pager = document.getElementById("pager");
  pager.innerHTML = "";
  if (pages < 2) return;
  for (let p = 0; p < pages; p++) {{
    const button = document.createElement("button");
    button.textContent = p + 1;
    button.disabled = p === page;
    button.onclick = () => {{ page = p; show(); }};
    pager.appendChild(button);
  }}
}}
function sortBy(key, descending) {{
  tiles.sort((a, b) => (descending ? -1 : 1) * (a.dataset[key] - b.dataset[key]));
  tiles.forEach(tile => grid.appendChild(tile));
  page = 0; show();
}}
document.getElementById("by-class").onclick = () => sortBy("class", false);
document.getElementById("by-confidence").onclick = () => sortBy("confidence", true);
show();
// record images that fail to load, so a test (or a reader) can tell
document.body.dataset.missingImages = "0";
document.querySelectorAll("img").forEach(img => img.addEventListener("error", () => {{
  document.body.dataset.missingImages = String(Number(document.body.dataset.missingImages) + 1);
}}));
window.addEventListener("load", () => {{
  document.body.dataset.loadedImages = String(Array.from(document.images)
    .filter(img => img.complete && img.naturalWidth > 0).length);
}});
</script>
</body></html>
"""


def _report_folder(run: RunData, out: str | Path | None) -> Path:
    """The report folder, made (with ``img/``). The default, ``RUN_DIR/report``, lies in a
    folder that may come from a stranger: there ``report`` and ``report/img`` must be real
    folders (or absent), not symbolic links that would lead the writes elsewhere."""
    folder = Path(out) if out is not None else run.run_dir / "report"
    if out is None:
        for path in (folder, folder / "img"):
            if path.is_symlink() or (path.exists() and not path.is_dir()):
                raise EvofoolError(f"'{path}' is a symbolic link or a file, expected a report "
                                   "folder (remove it, or give --out)")
    try:
        (folder / "img").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EvofoolError(f"cannot create report folder '{folder}': "
                           f"{exc.strerror or exc}") from None
    return folder


def _copy_png(source: Path, target: Path, what: str = "the elite's PNG image",
              missing: str = "is missing from the archive (re-create it with 'evofool "
                             "archive export')") -> None:
    """Copy the PNG ``source`` (a path built here, never read from the archive) into
    ``target``: only a regular file (not a symbolic link) that starts like a PNG, within
    MAX_PNG_BYTES. A link at ``target`` is replaced, never written through."""
    try:
        info = os.lstat(source)
    except FileNotFoundError:
        raise EvofoolError(f"'{source}' {missing}") from None
    except OSError as exc:
        raise EvofoolError(f"'{source}': cannot read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        raise EvofoolError(f"'{source}' is a symbolic link or not a regular file, expected "
                           f"{what}")
    if info.st_size > MAX_PNG_BYTES:
        raise EvofoolError(f"'{source}' holds {info.st_size:,} bytes, expected a PNG of at "
                           f"most {MAX_PNG_BYTES:,}")
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise EvofoolError(f"'{source}': cannot read ({exc.strerror or exc})") from None
    if not data.startswith(PNG_SIGNATURE) or len(data) > MAX_PNG_BYTES:
        raise EvofoolError(f"'{source}' is not a PNG image, expected {what}")
    if target.is_symlink() or (target.exists() and not target.is_file()):
        target.unlink()  # a link (or a FIFO) left there: replaced, never written through
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o666)
    with open(descriptor, "wb") as handle:
        handle.write(data)


def _read_ablation(run: RunData) -> tuple[dict, list[dict], bool] | None:
    """``RUN_DIR/ablation/ablation.json`` read and checked (settings, summary rows) and
    whether its plot is there (copied by :func:`_copy_png`, which refuses links); None
    without one. The JSON must lie inside the run directory."""
    folder = run.run_dir / ablation.FOLDER
    source, plot = folder / ablation.JSON_NAME, folder / ablation.PNG_NAME
    if not (source.exists() or source.is_symlink()):
        return None
    if not source.resolve().is_relative_to(run.run_dir.resolve()):
        raise EvofoolError(f"'{source}' leads outside the run directory '{run.run_dir}' (a "
                           "symbolic link), expected evofool ablate's output")
    settings, rows = ablation.read_summary(source)
    return settings, rows, plot.exists() or plot.is_symlink()


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the report folder (default ``RUN_DIR/report``); returns its index.html."""
    run = read_run(run_dir)
    check_archive_inside(run)
    out = _report_folder(run, out)
    rows = _rows(run)
    ablated = _read_ablation(run)
    page = _page(run, rows, ablated)
    try:
        for row in rows:
            if row["png"]:
                _copy_png(run.archive_dir / row["png"], out / "img" / row["png"])
        if ablated is not None and ablated[2]:
            _copy_png(run.run_dir / ablation.FOLDER / ablation.PNG_NAME, out / "ablation.png",
                      "the ablation plot (a PNG image)", "is missing")
        _plot_confidence(run, out / "confidence.png")
        _plot_coverage(run, out / "coverage.png")
        index = out / "index.html"
        write_text(index, page)
        write_text(out / "classes.json", json.dumps(rows, indent=1) + "\n")
    except OSError as exc:
        raise EvofoolError(f"cannot write the report into '{out}': "
                           f"{exc.strerror or exc}") from None
    return index
