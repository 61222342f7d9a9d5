"""The picture and the page of a retrain (:mod:`evofool.retrain`): ``retrain.png``, four
panels against the iteration k (held-out accuracy of DNN_k, its recall of the earlier fooling
images, how far and how fast evolution gets against it), and ``report.html``, one
self-contained page (the pictures are embedded, so it opens anywhere) with the table, each
iteration's fooling images and elites, and links to each evolution run's own report
(``evofool report``, written beside the run)."""
from __future__ import annotations

import base64
import html
import os
import stat
from pathlib import Path

import yaml

from evofool.files import atomic_path, write_text
from evofool.montage import confidence_label

MAX_EMBEDDED_BYTES = 16 << 20
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_plot(rows: list[dict], path: Path) -> None:
    """retrain.png: against k, the held-out accuracy of DNN_k, its recall of the earlier
    fooling images, the median and lowest best confidence evolution reaches against it (as
    1 - confidence on a log scale: 99.99% is four nines), and the median evaluations until
    a digit first reaches 99% and 99.99% (unreached digits count as never)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    k = [row["iteration"] for row in rows]

    def series(key: str, transform=lambda v: v) -> list[float]:
        return [float("nan") if row[key] is None else transform(row[key]) for row in rows]

    def gap(confidence: float) -> float:  # 1 - confidence; 12 nines or more are drawn at 12
        return max(1.0 - confidence, 1e-12)

    figure, axes = plt.subplots(2, 2, figsize=(10, 6.5), sharex=True)
    (accuracy, recall), (confidence, speed) = axes
    accuracy.plot(k, series("held_out_accuracy"), "o-", label="held-out real digits")
    accuracy.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:.2f}%"))
    accuracy.set_title("accuracy of DNN_k", fontsize=10)
    recall.plot(k, series("fooling_recall"), "o-", label="earlier fooling images, trained on")
    recall.plot(k, series("fooling_recall_held_out"), "s--",
                label="earlier fooling images, held out")
    recall.plot(k, series("real_as_fooling"), "^:", label="held-out real digits")
    recall.set_title("share DNN_k puts in the fooling class", fontsize=10)
    recall.set_ylim(-0.02, 1.02)
    confidence.plot(k, series("median_best", gap), "o-", label="median over digits")
    confidence.plot(k, series("min_best", gap), "s--", label="lowest digit")
    confidence.set_yscale("log")
    confidence.set_ylim(1.0, 3e-13)  # inverted: up is more confident; 0% at the bottom
    confidence.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _nines(v)))
    confidence.set_title("best confidence evolution reaches against DNN_k", fontsize=10)
    speed.plot(k, series("median_evaluations_to_99"), "o-", label="to 99%")
    speed.plot(k, series("median_evaluations_to_9999"), "s--", label="to 99.99%")
    speed.set_title("median evaluations until a digit is fooled", fontsize=10)
    speed.set_ylim(bottom=0)
    for axis in axes.flat:
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    for axis in axes[1]:
        axis.set_xlabel("iteration k (network DNN_k)")
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=90, format="png")
    plt.close(figure)


def _nines(gap: float) -> str:
    """1 - confidence as the confidence: 1 -> "0%", 1e-2 -> "99%", 1e-4 -> "99.99%"."""
    import math
    if gap <= 0:
        return ""
    exponent = -math.log10(gap)
    nines = round(exponent)
    if abs(exponent - nines) > 1e-6 or nines < 0:
        return ""
    if nines == 0:
        return "0%"
    digits = "9" * nines if nines > 1 else "90"
    return f"{digits[:2]}{'.' + digits[2:] if len(digits) > 2 else ''}%"


def _embedded(path: Path, alt: str) -> str:
    """An <img> holding the PNG at ``path`` (a regular file that starts like a PNG, at most
    MAX_EMBEDDED_BYTES), or a note that it is missing."""
    try:
        info = os.lstat(path)
        data = path.read_bytes() if stat.S_ISREG(info.st_mode) and \
            info.st_size <= MAX_EMBEDDED_BYTES else b""
    except OSError:
        data = b""
    if not data.startswith(PNG_SIGNATURE):
        return f"<p><em>{html.escape(path.name)} is missing</em></p>"
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img src="data:image/png;base64,{encoded}" alt="{html.escape(alt, quote=True)}">'


def percent(value: float | None, decimals: int = 2) -> str:
    """``0.99315`` -> ``99.32%`` (``-`` for None): the retrain table's and page's figures."""
    return "-" if value is None else f"{100 * value:.{decimals}f}%"


def _count(value) -> str:
    return "not reached" if value is None else f"{value:,}"


COLUMNS = (
    ("k", lambda r: str(r["iteration"])),
    ("outputs", lambda r: str(r["outputs"])),
    ("fooling images trained on", lambda r: f"{r['fooling_train_images']:,}"),
    ("held-out accuracy", lambda r: percent(r["held_out_accuracy"])),
    ("real digits called fooling", lambda r: percent(r["real_as_fooling"])),
    ("recall (trained on)", lambda r: percent(r["fooling_recall"], 1)),
    ("recall (held out)", lambda r: percent(r["fooling_recall_held_out"], 1)),
    ("digits >= 99%", lambda r: f"{r['digits_at_99']}/10"),
    ("digits >= 99.99%", lambda r: f"{r['digits_at_9999']}/10"),
    ("median best", lambda r: confidence_label(r["median_best"], 4)),
    ("lowest best", lambda r: confidence_label(r["min_best"], 4)),
    ("median evaluations to 99%", lambda r: _count(r["median_evaluations_to_99"])),
    ("median evaluations to 99.99%", lambda r: _count(r["median_evaluations_to_9999"])),
    ("fooling images kept (held out)",
     lambda r: f"{r['fooling_images']:,} ({r['fooling_held_out']:,})"),
    ("seconds (training, evolution)",
     lambda r: f"{r['seconds']:.0f} ({r['train_seconds']:.0f}, {r['evolve_seconds']:.0f})"),
)


def _iteration_section(folder: Path, row: dict) -> str:
    k = row["iteration"]
    best = ", ".join(f"{d}: {confidence_label(b, 4)}" for d, b in enumerate(row["best"]))
    reach = ", ".join(f"{d}: {_count(v)}" for d, v in enumerate(row["evaluations_to_9999"]))
    runs = []
    for run_dir in row["run_dirs"]:
        report = folder / run_dir / "report" / "index.html"
        link = (f' (<a href="{html.escape(f"{run_dir}/report/index.html", quote=True)}">'
                "its report</a>)" if report.is_file() else "")
        runs.append(f"<h4>{html.escape(run_dir)}{link}: the elites</h4>"
                    + _embedded(folder / run_dir / "montage.png", f"elites of {run_dir}"))
    fooling = Path(row["weights"]).parent / "fooling.png"
    return (f"<h3>Iteration {k}: DNN_{k} ({row['outputs']} outputs)</h3>"
            f"<p>Best confidence per digit: {html.escape(best)}.<br>Evaluations until "
            f"99.99% per digit: {html.escape(reach)}.<br>{row['fooling_candidates']:,} "
            f"distinct candidates reached the threshold; {row['fooling_images']:,} were kept "
            f"(per digit: {html.escape(str(row['fooling_per_digit']))}), "
            f"{row['fooling_held_out']:,} of them held out of training.</p>"
            f"<h4>Fooling images kept (up to 10 per digit)</h4>"
            + _embedded(folder / fooling, f"fooling images of iteration {k}") + "".join(runs))


def write_page(folder: Path, summary: dict) -> Path:
    """report.html in ``folder``: self-contained (pictures embedded); returns its path."""
    config = summary["experiment"]
    rows = summary["rows"]
    title = html.escape(str(config.get("name", folder.name)))
    status = ("finished" if summary["finished"] else
              f"{summary['iterations_done']} of {summary['iterations_planned']} iterations "
              "done; run the same command with --out to continue")
    facts = [("status", status), ("description", config.get("description") or ""),
             ("model", "LeNet trained anew each iteration (DNN_1: 10 digits; DNN_2 on: "
                       "+ the fooling class)"),
             ("genome", config["genome"].get("type")),
             ("algorithm", config["algorithm"].get("type")),
             ("budget per run", yaml.safe_dump(config["budget"], default_flow_style=True,
                                               width=10 ** 6).strip()),
             ("retrain", yaml.safe_dump(config["retrain"], default_flow_style=True,
                                        width=10 ** 6).strip()),
             ("seed", config.get("seed"))]
    fact_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                        for k, v in facts)
    head = "".join(f"<th>{html.escape(name)}</th>" for name, _ in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell(row))}</td>" for _, cell in COLUMNS)
                   + "</tr>" for row in rows)
    plot = _embedded(folder / "retrain.png", "accuracy, recall and confidence against k") \
        if rows else "<p>No iteration is done yet.</p>"
    sections = "".join(_iteration_section(folder, row) for row in rows)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>evofool retrain: {title}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
h1 {{ font-size: 1.4em; }} h2 {{ font-size: 1.15em; margin-top: 1.5em; }}
h3 {{ font-size: 1.05em; margin-top: 1.4em; }} h4 {{ font-size: 0.95em; }}
table {{ border-collapse: collapse; font-size: 0.85em; }}
td, th {{ border: 1px solid #ccc; padding: 2px 8px; text-align: left; }}
img {{ image-rendering: pixelated; max-width: 100%; }}
pre {{ background: #f6f6f6; padding: 0.6em; font-size: 0.8em; }}
</style></head>
<body>
<h1>evofool retrain: {title}</h1>
<p>Retraining with fooling images as an extra class (Nguyen, Yosinski &amp; Clune 2015,
sec. 5): iteration k trains DNN_k, measures it, then evolves new fooling images against it,
scored on the 10 digits only.</p>
<table>{fact_rows}</table>
<h2>Against k</h2>
{plot}
<h2>Per iteration</h2>
<table><tr>{head}</tr>
{body}
</table>
{sections}
<h2>Experiment</h2>
<pre>{html.escape(yaml.safe_dump(config, sort_keys=False))}</pre>
</body></html>
"""
    path = folder / "report.html"
    write_text(path, page)
    return path

