"""``evofool report RUN_DIR``: one self-contained HTML folder per run, opened from disk.

The folder holds ``index.html``, the elite images (copied), and two matplotlib plots: best
and median confidence per generation, and coverage (classes above 50/90/99/99.99%) over
evaluations. The page needs no server and no network. The elite grid can be sorted by class
or confidence; past 200 classes it is paged and thumbnails load lazily, so 1,000 ImageNet
classes stay usable.
"""
from __future__ import annotations

import html
import json
import shutil
from pathlib import Path

import numpy as np
import yaml

from evofool.errors import EvofoolError
from evofool.files import write_text
from evofool.montage import confidence_label
from evofool.run_data import RunData, read_run

PAGE_SIZE = 200
THRESHOLDS = (("above_0.5", "50%"), ("above_0.9", "90%"), ("above_0.99", "99%"),
              ("above_0.9999", "99.99%"))


def _plot_confidence(run: RunData, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # the run-wide step: the GA restarts its generation count for each target class
    generations = np.array([r.get("step", r["generation"]) for r in run.log])
    best = np.array([[np.nan if v is None else v for v in r["best"]] for r in run.log])
    batch = np.array([[np.nan if v is None else v for v in r["batch_median"]] for r in run.log])
    figure, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for axis, values, title in ((axes[0], best, "best (elite) confidence per class"),
                                (axes[1], batch, "median confidence of each generation")):
        if values.shape[1] <= 20:
            for column in range(values.shape[1]):
                axis.plot(generations, values[:, column], lw=1,
                          label=run.archive.class_names[column][:12])
        else:  # many classes: the spread, not a thousand lines
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
    figure.savefig(path, dpi=90)
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
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _rows(run: RunData) -> list[dict]:
    rows = []
    for row in run.archive_json["classes"]:
        cls = row["class"]
        filled = row["confidence"] is not None
        rows.append({
            "class": row.get("class_id", cls), "name": row["name"], "confidence": row["confidence"],
            "png_confidence": row.get("png_confidence"), "generation": row["generation"],
            "evaluations": row["evaluations"], "png": row.get("png"),
            "size": run.genome_type.describe(run.archive.genomes[cls]) if filled else "",
        })
    return rows


def _cell(value) -> str:
    return "-" if value is None else html.escape(str(value))


def _page(run: RunData, rows: list[dict]) -> str:
    summary = run.archive_json["summary"]
    info = run.info
    title = html.escape(str(run.config.get("name", run.run_dir.name)))
    tiles = []
    for row in rows:
        confidence = row["confidence"] if row["confidence"] is not None else -1
        label = f"{row['class']} {row['name']}" if row["name"] != str(row["class"]) else row["name"]
        image = (f'<img src="img/{html.escape(row["png"])}" alt="class {row["class"]}" '
                 f'loading="lazy" width="112" height="112">' if row["png"]
                 else '<div class="empty">empty</div>')
        tiles.append(
            f'<figure class="tile" data-class="{row["class"]}" data-confidence="{confidence}">'
            f'{image}<figcaption><span class="label">{html.escape(label)}</span><br>'
            f'{confidence_label(row["confidence"])}</figcaption></figure>')
    table = "\n".join(
        f"<tr><td>{row['class']}</td><td>{html.escape(row['name'])}</td>"
        f"<td>{confidence_label(row['confidence'], 6) if row['confidence'] is not None else '-'}</td>"
        f"<td>{confidence_label(row['png_confidence'], 6) if row['png_confidence'] is not None else '-'}</td>"
        f"<td>{_cell(row['generation'])}</td><td>{_cell(row['evaluations'])}</td>"
        f"<td>{html.escape(row['size'])}</td></tr>" for row in rows)
    facts = [("genome", run.config.get("genome", {}).get("type")),
             ("model", (run.config.get("model") or {}).get("spec")),
             ("algorithm", run.config.get("algorithm", {}).get("type")),
             ("generations", run.log[-1]["generation"]),
             ("evaluations", f"{run.log[-1]['evaluations']:,}"),
             ("wall time", f"{info['wall_time_s']:.1f} s" if "wall_time_s" in info else None),
             ("evaluations/s", f"{info['evaluations_per_s']:,.0f}"
              if "evaluations_per_s" in info else None),
             ("device", info.get("device")),
             ("classes filled", f"{summary['filled']} / {summary['classes']}"),
             ("median confidence", f"{summary['median']:.6f}"),
             (">= 99% / >= 99.99%", f"{summary['above_0.99']} / {summary['above_0.9999']}")]
    fact_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{_cell(v)}</td></tr>"
                        for k, v in facts)
    config = html.escape(yaml.safe_dump(run.config, sort_keys=False))
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
<h1>evofool run: {title}</h1>
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
<th>generation</th><th>evaluations</th><th>genome size</th></tr>
{table}
</table>
<h2>Configuration</h2>
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


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the report folder (default ``RUN_DIR/report``); returns its index.html."""
    run = read_run(run_dir)
    out = Path(out) if out is not None else run.run_dir / "report"
    try:
        (out / "img").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EvofoolError(f"cannot create report folder '{out}': {exc.strerror}") from None
    rows = _rows(run)
    for row in rows:
        if row["png"]:
            source = run.archive_dir / row["png"]
            if not source.is_file():
                raise EvofoolError(f"'{source}' is missing from the archive "
                                   "(re-create it with 'evofool archive export')")
            shutil.copyfile(source, out / "img" / row["png"])
    _plot_confidence(run, out / "confidence.png")
    _plot_coverage(run, out / "coverage.png")
    index = out / "index.html"
    write_text(index, _page(run, rows))
    write_text(out / "classes.json", json.dumps(rows, indent=1) + "\n")
    return index
