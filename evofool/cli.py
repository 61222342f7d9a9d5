"""The ``evofool`` command: thin wrappers over library calls (which the tests call too)."""
from __future__ import annotations

import argparse
import sys

from evofool.errors import EvofoolError


def _cmd_run(args: argparse.Namespace) -> int:
    from evofool.runner import resume_run, run_experiment
    if args.resume:
        overrides = ([args.experiment] if args.experiment else []) + args.overrides
        result = resume_run(args.resume, overrides)
    else:
        if not args.experiment:
            raise EvofoolError("give an experiment YAML or a packaged experiment's name "
                               "('evofool experiments' lists them), or --resume RUN_DIR")
        from evofool.catalog import find_experiment
        from evofool.config import load_experiment
        path = find_experiment(args.experiment)
        print(f"experiment: {path}", flush=True)
        result = run_experiment(load_experiment(path, args.overrides))
    summary = result.archive_json["summary"]
    print(f"run directory: {result.run_dir}")
    print(f"generations {result.generations}, evaluations {result.evaluations}, "
          f"wall time {result.wall_time:.1f} s ({result.evaluations / result.wall_time:,.0f} "
          "evaluations/s)")
    print(f"classes >= 99.99%: {summary['above_0.9999']}/{summary['classes']}, "
          f"median confidence {summary['median']:.6f}, min {summary['min']:.6f}")
    print(f"montage: {result.run_dir / 'montage.png'}")
    return 0


def _cmd_archive_show(args: argparse.Namespace) -> int:
    from evofool.archive_store import load_archive
    from evofool.montage import confidence_label
    _, _, content = load_archive(args.run_dir)
    print(f"{'class':>5}  {'name':<20} {'confidence':>12} {'png conf.':>12} "
          f"{'generation':>10} {'evaluations':>11}")

    def cell(value, width: int, as_percent: bool = False) -> str:
        text = "-" if value is None else confidence_label(value, 6) if as_percent else value
        return f"{text:>{width}}"

    for row in content["classes"]:
        class_id = row.get("class_id", row["class"])  # the model output (with model.classes)
        print(f"{class_id:>5}  {row['name'][:20]:<20} {cell(row['confidence'], 12, True)} "
              f"{cell(row.get('png_confidence'), 12, True)} {cell(row['generation'], 10)} "
              f"{cell(row['evaluations'], 11)}")
    s = content["summary"]
    print(f"filled {s['filled']}/{s['classes']}, median {s['median']:.6f}, "
          f">=99%: {s['above_0.99']}, >=99.99%: {s['above_0.9999']}")
    reached = [row.get("evaluations_to") or {} for row in content["classes"]]
    if any(any(v is not None for v in r.values()) for r in reached):  # query accounting
        levels = list(reached[0])
        print("\nevaluations until the class's elite first reached: " + ", ".join(
            f">= {float(m):.4g}" for m in levels))
        for row, counts in zip(content["classes"], reached):
            print(f"{row.get('class_id', row['class']):>5}  {row['name'][:20]:<20} " + " ".join(
                f"{'-' if counts.get(m) is None else counts[m]:>10}" for m in levels))
    measured = [row for row in content["classes"] if isinstance(row.get("measures"), dict)]
    if measured:  # perturbations: how far each elite is from the start image
        names = list(measured[0]["measures"])
        print("\ndistortion from the start image (pixels in [0, 1]): "
              + ", ".join(n.replace("_", " ") for n in names))
        for row in measured:
            print(f"{row.get('class_id', row['class']):>5}  {row['name'][:20]:<20} " + " ".join(
                f"{row['measures'][n]:>14.4f}" if n != "changed_pixels"
                else f"{int(row['measures'][n]):>14,}" for n in names))
    rows = [row for row in content["classes"] if isinstance(row.get("first_step"), dict)]
    if rows:  # gradient ascent: when each class's image first got there, and at what cost
        milestones = list(rows[0]["first_step"])
        print("\nfirst step at which the class's image reaches: " + ", ".join(
            "top-1" if m == "argmax" else f">= {float(m):.2%}" for m in milestones)
              + " (evaluation-equivalents: 3 per step)")
        for row in rows:
            firsts = [row["first_step"].get(m) for m in milestones]
            costs = [(row.get("evaluation_equivalents") or {}).get(m) for m in milestones]
            print(f"{row.get('class_id', row['class']):>5}  {row['name'][:20]:<20} " + " ".join(
                f"{'-' if f is None else f:>6} ({'-' if c is None else c:>6})"
                for f, c in zip(firsts, costs)))
    return 0


def _cmd_archive_export(args: argparse.Namespace) -> int:
    from evofool.archive_store import export_archive
    written = export_archive(args.run_dir, args.out, genomes=args.genomes)
    genomes = " (each with its genome JSON)" if args.genomes else ""
    print(f"wrote {len(written) - 1} class images{genomes} and {written[-1]}")
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    from evofool.render import render_to_png
    written = render_to_png(args.source, args.out, args.size, args.cls)
    print(f"wrote {written[0] if len(written) == 1 else f'{len(written)} images to {args.out}'}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from evofool.report import write_report
    print(f"report: {write_report(args.run_dir, args.out)}")
    return 0


def _percent(value: float | None) -> str:
    from evofool.montage import confidence_label
    return "-" if value is None else confidence_label(value, 4)


def _cmd_rescore(args: argparse.Namespace) -> int:
    from evofool.transfer import ModelSpec, write_rescore
    csv_path, json_path, rows = write_rescore(args.run_dir, ModelSpec.parse(args.model),
                                              args.out, args.device)
    print(f"{'class':>5}  {'name':<16} {'source':>10} {'target':>10}  target top-1")
    for row in rows:
        print(f"{row['class']:>5}  {row['name'][:16]:<16} {_percent(row['source_confidence']):>10} "
              f"{_percent(row['target_confidence']):>10}  {row['target_top1_name'][:16]} "
              f"({_percent(row['target_top1_confidence'])})")
    print(f"wrote {csv_path} and {json_path}")
    return 0


def _threshold(text: str) -> float:
    """``transfer --threshold``: a confidence in (0, 1] (one-line error otherwise)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 < value <= 1.0:  # NaN fails too
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise EvofoolError(f"--threshold {shown!r} is invalid: expected a confidence in (0, 1], "
                           "e.g. 0.99")
    return value


def _cmd_transfer(args: argparse.Namespace) -> int:
    from evofool.transfer import ModelSpec, transfer_matrix, write_transfer
    threshold = _threshold(args.threshold)
    models = [ModelSpec.parse(text) for text in args.model]
    matrix = transfer_matrix(args.runs, models, threshold, args.device)
    width = max(len(m.label) for m in models)
    print("elites scored in their own class: mean confidence, fractions at or above 50% and "
          f"{threshold:g}, fraction the model's top-1 agrees")
    print(f"{'run':<30} {'model':<{width}} {'mean':>7} {'>=50%':>6} "
          f"{f'>={threshold:g}':>7} {'top-1':>6}")
    for i, run in enumerate(matrix["runs"]):
        for j, model in enumerate(matrix["models"]):
            print(f"{run[-30:]:<30} {model:<{width}} {matrix['mean_confidence'][i][j]:>7.4f} "
                  f"{matrix['fraction_half'][i][j]:>6.0%} {matrix['fraction_fooled'][i][j]:>7.0%} "
                  f"{matrix['top1_agreement'][i][j]:>6.0%}")
    written = write_transfer(matrix, args.out)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _cmd_export_dataset(args: argparse.Namespace) -> int:
    from evofool.api import export_dataset
    threshold = None if args.threshold is None else _threshold(args.threshold)
    rows = export_dataset(args.runs, args.out, threshold, force=args.force, trust=args.trust)
    classes = len({row["class_id"] for row in rows})
    print(f"wrote {len(rows)} images of {classes} classes from {len(args.runs)} run(s) to "
          f"{args.out} (an ImageFolder; manifest.csv and manifest.json list them)")
    return 0


def _cmd_ood(args: argparse.Namespace) -> int:
    import time

    from evofool.api import ood
    from evofool.ood import format_table
    start = time.perf_counter()
    rows = ood(args.sources, args.model, args.in_dist, args.data_dir, args.device, args.out,
               fit_images=_integer(args.fit_images, "--fit-images"), trust=args.trust)
    print(f"{rows[0]['ood_images']:,} fooling images (OOD) vs {rows[0]['in_dist_images']:,} "
          f"{rows[0]['in_dist']} images (in-dist) on {rows[0]['model']}, "
          f"{time.perf_counter() - start:.1f} s; OOD is the positive class")
    print(format_table(rows))
    for row in rows:
        print(f"{row['detector']}: {row['settings']}")
    if args.out:
        print(f"wrote {args.out}/ood.json and ood.csv")
    return 0


def _integer(text: str, option: str) -> int:
    """An integer option given as text (one-line error otherwise; ranges: the library)."""
    try:
        return int(text)
    except ValueError:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise EvofoolError(f"{option} {shown!r} is invalid: expected an integer") from None


def _cmd_ablate(args: argparse.Namespace) -> int:
    import time

    from evofool.ablation import ablate_run, format_table, summary_rows, write_ablation
    start = time.perf_counter()
    result = ablate_run(args.run_dir, args.model, args.device, _integer(args.grid, "--grid"),
                        _integer(args.max_copies, "--max-copies"),
                        _integer(args.orders, "--orders"), _integer(args.seed, "--seed"))
    written = write_ablation(result, args.out)
    print(f"ablation of {len(result['classes'])} elites on {result['model']}, grid "
          f"{result['grid']} x {result['grid']}, {time.perf_counter() - start:.1f} s")
    print(format_table(summary_rows(result)))
    print("wrote " + ", ".join(str(path) for path in written))
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from evofool.compare import compare_runs
    if args.run_b is None:  # a sweep folder: its runs side by side
        from evofool.sweep import PLAN, format_table, read_plan, summary_rows
        folder = Path(args.run_a)
        if not (folder / PLAN).is_file():
            raise EvofoolError(f"compare: give two run directories, or one sweep folder "
                               f"('{folder}' has no {PLAN})")
        print(format_table(summary_rows(folder, read_plan(folder)[1], {})))
        return 0
    rows = compare_runs(args.run_a, args.run_b)
    print(f"A: {args.run_a}\nB: {args.run_b}")
    print(f"{'class':>5}  {'name':<16} {'conf. A':>10} {'gen A':>6} {'conf. B':>10} {'gen B':>6}")
    for row in rows:
        print(f"{row['class']:>5}  {row['name'][:16]:<16} {_percent(row['confidence_a']):>10} "
              f"{row['generation_a'] if row['generation_a'] is not None else '-':>6} "
              f"{_percent(row['confidence_b']):>10} "
              f"{row['generation_b'] if row['generation_b'] is not None else '-':>6}")
    return 0


def _cmd_train_lenet(args: argparse.Namespace) -> int:
    from evofool.api import train_lenet
    # train_lenet shows a progress bar and prints its summary line
    train_lenet(args.data_dir, args.out, seed=args.seed, epochs=args.epochs,
                download=args.download, download_root=args.download_root,
                command="evofool " + " ".join(sys.argv[1:]))
    return 0


def _cmd_retrain(args: argparse.Namespace) -> int:
    from evofool.catalog import find_experiment
    from evofool.config import load_experiment
    from evofool.retrain import run_retrain
    if not args.experiment:
        raise EvofoolError("give an experiment YAML with a retrain: section, or a packaged "
                           "experiment's name (e.g. mnist_retrain)")
    path = find_experiment(args.experiment)
    print(f"experiment: {path}", flush=True)
    summary = run_retrain(load_experiment(path, args.overrides), args.data_dir, args.out)
    out = summary["out"]
    print(f"wrote {out}/retrain.json, retrain.csv, retrain.png and report.html")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from evofool.fitness.registry import available_targets
    from evofool.genomes.registry import available_genome_types
    from evofool.search.registry import available_algorithms
    print("models:     " + ", ".join(available_targets()))
    print("genomes:    " + ", ".join(available_genome_types()))
    print("algorithms: " + ", ".join(available_algorithms()))
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from pathlib import Path

    from evofool.sweep import format_table, run_sweep, start_sweep
    if args.resume:
        if args.experiment or args.overrides:
            raise EvofoolError("sweep --resume DIR takes no experiment or overrides (the "
                               "sweep's plan has them)")
        folder = Path(args.resume)
    else:
        if not args.experiment:
            raise EvofoolError("give an experiment and key=v1,v2 overrides, or --resume DIR")
        folder = start_sweep(args.experiment, args.overrides)
    print(f"sweep folder: {folder}", flush=True)
    rows = run_sweep(folder, args.backend, args.parallel, args.address,
                     resuming=bool(args.resume))
    print(format_table(rows))
    print(f"summary: {folder / 'sweep_summary.csv'}; continue unfinished runs with "
          f"'evofool sweep --resume {folder}'")
    return 0 if all(row["status"] == "finished" for row in rows) else 1


def _cmd_experiments(args: argparse.Namespace) -> int:
    from evofool.catalog import packaged_experiments, packaged_folder
    experiments = packaged_experiments()
    width = max(len(e.name) for e in experiments)
    for experiment in experiments:
        print(f"{experiment.name:<{width}}  {experiment.description}")
    print(f"\nrun one: evofool run NAME; copy one to edit: evofool init NAME [DIR]; "
          f"their keys: {packaged_folder() / 'README.md'}")
    return 0


def _cmd_init(args: argparse.Namespace) -> int:
    from evofool.catalog import copy_experiment
    path = copy_experiment(args.name, args.dir)
    print(f"wrote {path}; edit it, then: evofool run {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evofool",
        description="Evolve fooling images: experiment YAML -> genomes -> rendered images -> "
                    "classifier confidences -> per-class MAP-Elites archive.")
    from evofool import __version__
    parser.add_argument("--version", action="version", version=f"evofool {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run an experiment YAML, or resume a run directory")
    run.add_argument("experiment", nargs="?",
                     help="experiment YAML file, or a packaged experiment's name")
    run.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. seed=3")
    run.add_argument("--resume", metavar="RUN_DIR",
                     help="continue a stopped run (a run directory, runs/NAME for its latest "
                          "run, or 'latest')")
    run.set_defaults(func=_cmd_run)

    sweep = commands.add_parser("sweep", help="run an experiment for every combination of "
                                              "override values (seed=0,1,2 model.spec=a,b)")
    sweep.add_argument("experiment", nargs="?", help="experiment YAML or packaged name")
    sweep.add_argument("overrides", nargs="*", help="key=value[,value...]: one run per "
                                                    "combination")
    sweep.add_argument("--backend", choices=["local", "ray"], default="local",
                       help="processes here (local) or Ray tasks (ray)")
    sweep.add_argument("--parallel", type=int, help="runs at once (default: the cores here)")
    sweep.add_argument("--address", help="Ray cluster (auto or HOST:PORT; default: start "
                                         "Ray here)")
    sweep.add_argument("--resume", metavar="SWEEP_DIR", help="continue a sweep")
    sweep.set_defaults(func=_cmd_sweep)

    listing = commands.add_parser("experiments", help="list the experiments that ship with "
                                                      "evofool")
    listing.set_defaults(func=_cmd_experiments)
    init = commands.add_parser("init", help="copy a packaged experiment into a folder to edit")
    init.add_argument("name", help="packaged experiment name ('evofool experiments')")
    init.add_argument("dir", nargs="?", default=".", help="folder to copy it into (default .)")
    init.set_defaults(func=_cmd_init)

    archive = commands.add_parser("archive", help="inspect a run's per-class archive")
    archive_cmds = archive.add_subparsers(dest="archive_command", required=True)
    show = archive_cmds.add_parser("show", help="print the per-class table")
    show.add_argument("run_dir", help="run directory or its archive/ folder")
    show.set_defaults(func=_cmd_archive_show)
    export = archive_cmds.add_parser("export", help="write per-class PNGs and the montage")
    export.add_argument("run_dir", help="run directory or its archive/ folder")
    export.add_argument("--out", required=True, help="output folder")
    export.add_argument("--genomes", action="store_true",
                        help="also write each elite's genome JSON beside its PNG "
                             "(evofool render draws it at any size)")
    export.set_defaults(func=_cmd_archive_export)

    render = commands.add_parser(
        "render", help="re-render elites or a genome JSON at any size (e.g. a CPPN at 1024 px)")
    render.add_argument("source", help="run directory, archive folder, archive.json or genome JSON")
    render.add_argument("--size", type=int, required=True, help="output side in pixels")
    render.add_argument("--out", required=True,
                        help="PNG file (or a folder: every class of an archive)")
    render.add_argument("--class", dest="cls", type=int, help="the archive class to render")
    render.set_defaults(func=_cmd_render)

    report = commands.add_parser("report", help="write a self-contained HTML report of a run")
    report.add_argument("run_dir", help="run directory")
    report.add_argument("--out", help="report folder (default: RUN_DIR/report)")
    report.set_defaults(func=_cmd_report)

    rescore = commands.add_parser("rescore", help="score a run's elites with another model")
    rescore.add_argument("run_dir", help="run directory")
    rescore.add_argument("--model", required=True, help="target spec, or SPEC@WEIGHTS_FILE")
    rescore.add_argument("--out", help="output path without suffix (writes .csv and .json; "
                                       "default RUN_DIR/rescore_<model>)")
    rescore.add_argument("--device", default="auto")
    rescore.set_defaults(func=_cmd_rescore)

    transfer = commands.add_parser("transfer", help="matrix of runs' elites scored by models")
    transfer.add_argument("runs", nargs="+", help="run directories")
    transfer.add_argument("--model", action="append", required=True,
                          help="target spec or SPEC@WEIGHTS_FILE (repeat for several)")
    transfer.add_argument("--threshold", default="0.99",  # checked by _threshold: one line
                          help="confidence that still counts as fooled (default 0.99)")
    transfer.add_argument("--out", required=True, help="folder for transfer.csv/.json/.png")
    transfer.add_argument("--device", default="auto")
    transfer.set_defaults(func=_cmd_transfer)

    ablate = commands.add_parser(
        "ablate", help="occlude tiles of each elite and repeat its best tile: confidence vs "
                       "fraction kept and vs copies (the paper's repetition ablation)")
    ablate.add_argument("run_dir", help="run directory")
    ablate.add_argument("--grid", default="4", help="tiles per side (default 4)")
    ablate.add_argument("--max-copies", default="6",
                        help="repeat the best tile up to N x N times (default 6)")
    ablate.add_argument("--orders", default="3", help="random occlusion orders (default 3)")
    ablate.add_argument("--seed", default="0", help="seed of the random orders (default 0)")
    ablate.add_argument("--model", help="score with SPEC or SPEC@WEIGHTS_FILE instead of the "
                                        "run's own model")
    ablate.add_argument("--out", help="output folder (default: RUN_DIR/ablation)")
    ablate.add_argument("--device", default="auto")
    ablate.set_defaults(func=_cmd_ablate)

    export_dataset = commands.add_parser(
        "export-dataset", help="write the elites of runs as an ImageFolder dataset with a "
                               "manifest (a fooling set for OOD benchmarks)")
    export_dataset.add_argument("runs", nargs="+", help="run directories")
    export_dataset.add_argument("--out", required=True, help="dataset folder to write (new)")
    export_dataset.add_argument("--threshold",  # checked by _threshold: one line
                                help="keep only elites at or above this confidence (their "
                                     "PNG's; default: every filled class)")
    export_dataset.add_argument("--force", action="store_true",
                                help="replace a dataset that export-dataset wrote to --out")
    export_dataset.set_defaults(func=_cmd_export_dataset)

    ood = commands.add_parser(
        "ood", help="score OOD detectors (pytorch-ood: MaxSoftmax, Energy, ODIN, "
                    "Mahalanobis) on fooling images vs in-distribution images")
    ood.add_argument("sources", nargs="+", help="run directories and/or export-dataset folders")
    ood.add_argument("--model", help="SPEC or SPEC@WEIGHTS_FILE (default: the sources' model)")
    ood.add_argument("--in-dist", default="mnist-test",
                     help="mnist-test (default; needs --data-dir or EVOFOOL_MNIST_DIR) or an "
                          "ImageFolder DIR/CLASS/IMAGE of in-distribution images")
    ood.add_argument("--data-dir", help="folder of MNIST IDX .gz files (docs/LENET.md)")
    ood.add_argument("--fit-images", default="10000",
                     help="MNIST training images to fit Mahalanobis on (default 10000)")
    ood.add_argument("--out", help="folder for ood.json and ood.csv")
    ood.add_argument("--device", default="auto")
    ood.set_defaults(func=_cmd_ood)

    compare = commands.add_parser("compare", help="two runs side by side, class by class, or "
                                                  "the runs of a sweep folder")
    compare.add_argument("run_a", help="a run directory, or a sweep folder")
    compare.add_argument("run_b", nargs="?", help="the other run directory")
    compare.set_defaults(func=_cmd_compare)

    train = commands.add_parser("train", help="train a target classifier")
    train_cmds = train.add_subparsers(dest="model", required=True)
    lenet = train_cmds.add_parser("lenet", help="train the paper's LeNet on MNIST")
    lenet.add_argument("--data-dir", help="folder of MNIST IDX .gz files (docs/LENET.md)")
    lenet.add_argument("--download", action="store_true",
                       help="download MNIST with torchvision instead (needs internet)")
    lenet.add_argument("--download-root", help="where torchvision keeps MNIST when downloading")
    lenet.add_argument("--out", required=True, help="weights file to write (.safetensors)")
    lenet.add_argument("--seed", type=int, default=0)
    lenet.add_argument("--epochs", type=int, default=12)
    lenet.set_defaults(func=_cmd_train_lenet)

    retrain = commands.add_parser(
        "retrain", help="retrain LeNet with the fooling images as an 11th class, evolve "
                        "against it, repeat (paper sec. 5)")
    retrain.add_argument("experiment", nargs="?",
                         help="experiment YAML with a retrain: section, or a packaged name")
    retrain.add_argument("overrides", nargs="*",
                         help="key.sub=value overrides, e.g. retrain.iterations=3")
    retrain.add_argument("--data-dir", help="folder of MNIST IDX .gz files (docs/LENET.md)")
    retrain.add_argument("--out", help="output folder (default runs/NAME/STAMP); one that "
                                       "holds an interrupted retrain is continued")
    retrain.set_defaults(func=_cmd_retrain)

    models = commands.add_parser("models", help="list models, genome types and algorithms")
    models.set_defaults(func=_cmd_models)

    for command in (run, sweep, show, export, render, report, rescore, transfer, compare,
                    ablate, export_dataset, ood):
        command.add_argument(
            "--trust", action="store_true",
            help="load code that the run directory, archive or genome file names (a "
                 "module:Class genome type or algorithm, a python: or torchscript: model); "
                 "only for files from someone you trust")
    return parser


def main(argv: list[str] | None = None) -> int:
    from evofool.plugins import trusting_artifacts
    from evofool.stops import RunStopped
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may also follow the options (evofool sweep EXP --backend ray seed=0,1)
    if extra and hasattr(args, "overrides") and all("=" in a and not a.startswith("-")
                                                    for a in extra):
        args.overrides += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        with trusting_artifacts(getattr(args, "trust", False)):
            return args.func(args)
    except RunStopped as exc:  # the user asked for the stop: not an error
        print(f"evofool: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # Ctrl-C outside a run's loop (loading, writing)
        print("evofool: interrupted", file=sys.stderr)
        return 130
    except EvofoolError as exc:
        print(f"evofool: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into head & co.: stop quietly
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
