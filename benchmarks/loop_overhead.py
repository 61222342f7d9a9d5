"""How much the evolution loop adds to the classifier's own time, and DEAP programs for scale.

Runs, in one process and on the same machine:
  1. the full evofool loop of an experiment (``evofool.runner.run_experiment``: ask ->
     ``toolbox.map(toolbox.evaluate, chunks)`` -> tell, JSON-lines log, checkpoints). Its
     rate is read from the run's own ``log.jsonl``: evaluations / wall time from the end of
     generation 0 (model loaded, initial batch scored) to the end of the last generation
     (and per process CPU second). ``ChunkEvaluator.__call__`` (the toolbox's ``evaluate``:
     render + ``Target.scores`` of one chunk of ``runtime.batch_size`` candidates) is
     wrapped to time the calls and to keep every 10th chunk it scores, rendered;
  2. the classifier alone (``Target.scores`` of the same run's target: normalization,
     forward pass, softmax; no mutation, rendering, archive or logging) on those same
     chunks, one call per chunk, twice:
       * "after the run": all kept chunks back to back, median of 5 passes (the figure the
         acceptance test "loop >= 0.8 of classifier-only" was first written against);
       * "paired": inside the run, right after each kept chunk is scored, its images are
         scored once more by ``Target.scores`` alone, so both see the same load at the same
         moment (on a shared machine the load during a 30-60 s loop and during the later
         passes can differ by 20%). The extra calls' time (and that of rendering the kept
         chunk) is subtracted from the loop's wall and CPU time;
  3. "DEAP, batched evaluate": MAP-Elites written as a DEAP program in DEAP's documented
     style, with the batching that DEAP leaves to ``toolbox.map``. Individuals are
     ``creator`` classes (``list`` of H*W floats in [0, 1], a ``base.Fitness`` with one
     weight per class); each generation draws ``algorithm.offspring`` (200) parents with
     ``random.choice`` over the filled cells' elites (an elite that holds k cells is drawn
     k times as often, as in evofool), ``toolbox.clone`` (deepcopy) and
     ``tools.mutPolynomialBounded`` (eta 15, indpb 0.1, bounds [0, 1]) each of them, then
     ``fitnesses = toolbox.map(toolbox.evaluate, offspring)`` and
     ``ind.fitness.values = fit``. ``toolbox.map`` is registered to a function that cuts the
     individuals into chunks of ``runtime.batch_size`` and calls ``toolbox.evaluate`` once per
     chunk (the same place DEAP's docs put a ``multiprocessing.Pool.map`` or SCOOP's
     ``futures.map``); the registered ``evaluate`` takes a chunk of individuals, stacks them
     into one (N, C, H, W) tensor and returns one fitness tuple per individual from ONE
     ``Target.scores`` call. Each child then takes every cell whose elite it beats (the
     paper's rule, as evofool). Same target object and chunk size as the evofool run;
     20 generations timed after generation 0 (``algorithm.init_size`` random individuals);
  4. "DEAP, one evaluate call per image": the same program with DEAP's default
     ``toolbox.map`` (the builtin ``map``) and an ``evaluate`` that scores one individual,
     i.e. one forward pass per image (the older, naive baseline); 5 generations timed.
Prints a table of evaluations/s and the ratio to the classifier alone (the target for the
evofool loop is >= 0.8), per wall-clock and per process CPU second, and where a
generation's time goes in the evofool loop and in the DEAP programs.

    python benchmarks/loop_overhead.py [EXPERIMENT.yaml] [key=value ...]

Default experiment: experiments/mnist_direct_mapelites.yaml. The DEAP rows need a direct
(pixel) encoding with MAP-Elites; for other experiments (e.g. the CPPN one) they are skipped.
"""
from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from deap import base, creator, tools

from evofool.config import load_experiment
from evofool.runner import run_experiment
from evofool.search.evaluation import ChunkEvaluator

REPO = Path(__file__).resolve().parents[1]


def full_loop(experiment, keep_every: int = 10) -> dict:
    """Run the experiment and measure, after generation 0 (model loaded, initial batch
    scored):

    * the whole loop's evaluations per wall second, from the run's own log, and per process
      CPU second (from the end of generation 0's last chunk to the end of the last chunk);
    * the time spent inside ``ChunkEvaluator`` calls (render + ``Target.scores``);
    * every ``keep_every``-th chunk, rendered, for the classifier-only measurement after the
      run (keeping all would make the loop allocate hundreds of MB as it runs);
    * "paired" classifier-only timings: right after each kept chunk is scored, the same
      images are scored once more by ``Target.scores`` alone, under the very load the loop
      sees at that moment. The time of these extra calls (and of rendering the kept chunk)
      is subtracted from the loop's wall and CPU time, so the loop's rate is unaffected."""
    # per call: evaluations before it, seconds inside ChunkEvaluator, process CPU seconds at
    # the end (after any extra call), extra wall and CPU seconds, paired classifier seconds
    # (wall, CPU), the kept rendered chunk
    calls: list[dict] = []
    seen = {"evaluations": 0, "render": 0.0}
    original = ChunkEvaluator.__call__

    def timed_render(render):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            images = render(*args, **kwargs)
            seen["render"] += time.perf_counter() - start
            return images
        wrapper.untimed = render
        return wrapper

    def recording(self, candidates):
        if not hasattr(self.genome_type.render, "untimed"):  # time rendering inside the call
            self.genome_type.render = timed_render(self.genome_type.render)
        seen["render"] = 0.0
        start = time.perf_counter()
        scores = original(self, candidates)
        call = {"before": seen["evaluations"], "seconds": time.perf_counter() - start,
                "render": seen["render"], "extra": 0.0, "extra_cpu": 0.0, "images": None}
        if len(calls) % keep_every == 1:
            extra, extra_cpu = time.perf_counter(), time.process_time()
            images = self.genome_type.render.untimed(candidates)
            wall, cpu = time.perf_counter(), time.process_time()
            self.target.scores(images)
            call.update(images=images, paired=time.perf_counter() - wall,
                        paired_cpu=time.process_time() - cpu)
            call.update(extra=time.perf_counter() - extra,
                        extra_cpu=time.process_time() - extra_cpu)
        call["cpu_mark"] = time.process_time()
        calls.append(call)
        seen.update(evaluations=seen["evaluations"] + len(candidates), target=self.target,
                    genome_type=self.genome_type)
        return scores

    ChunkEvaluator.__call__ = recording
    try:
        result = run_experiment(experiment)
    finally:
        ChunkEvaluator.__call__ = original
        if "genome_type" in seen:
            del seen["genome_type"].render  # back to the class's method
    log = [json.loads(line) for line in
           (result.run_dir / "log.jsonl").read_text().splitlines()]
    timed = [c for c in calls if c["before"] >= log[0]["evaluations"]]  # after generation 0
    kept = [c for c in timed if c["images"] is not None]
    evaluations = log[-1]["evaluations"] - log[0]["evaluations"]
    seconds = log[-1]["wall_time"] - log[0]["wall_time"] - sum(c["extra"] for c in timed)
    cpu = (timed[-1]["cpu_mark"] - calls[len(calls) - len(timed) - 1]["cpu_mark"]
           - sum(c["extra_cpu"] for c in timed))
    kept_evaluations = sum(len(c["images"]) for c in kept)
    return {"rate": evaluations / seconds, "cpu_rate": evaluations / cpu,
            "evaluations": evaluations, "seconds": seconds, "generations": len(log) - 1,
            "batches": [c["images"] for c in kept], "target": seen["target"],
            "genome_type": seen["genome_type"],
            "paired": (kept_evaluations / sum(c["paired"] for c in kept),
                       kept_evaluations / sum(c["paired_cpu"] for c in kept)),
            "inside_evaluate": sum(c["seconds"] for c in timed),
            "render": sum(c["render"] for c in timed), "chunks": len(timed)}


def classifier_only(target, batches: list[torch.Tensor], repeats: int = 5
                    ) -> tuple[float, float]:
    """Evaluations per wall and per CPU second of ``Target.scores`` alone on the recorded
    chunks (median of repeats)."""
    target.scores(batches[0])  # warm-up
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        for images in batches:
            target.scores(images)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    evaluations = sum(len(b) for b in batches)
    return evaluations / float(np.median(walls)), evaluations / float(np.median(cpus))


def deap_map_elites(target, shape: tuple[int, int, int], init_size: int, offspring: int,
                    generations: int, chunk_size: int | None, seed: int = 0) -> dict:
    """MAP-Elites as a DEAP program (see the module docstring, rows 3 and 4).

    ``chunk_size`` None: DEAP's default ``toolbox.map`` (builtin ``map``) over an ``evaluate``
    of one individual; otherwise ``toolbox.map`` batches the individuals into chunks of
    ``chunk_size`` and ``evaluate`` scores a whole chunk in one ``Target.scores`` call.
    Returns evaluations/s and the seconds spent in variation (clone + mutate) and in
    ``toolbox.map`` (evaluation)."""
    classes = len(target.class_ids)
    name = f"DeapFitness{classes}"
    if not hasattr(creator, name):
        creator.create(name, base.Fitness, weights=(1.0,) * classes)
        creator.create(f"DeapIndividual{classes}", list, fitness=getattr(creator, name))
    individual_class = getattr(creator, f"DeapIndividual{classes}")
    random.seed(seed)
    genes = int(np.prod(shape))
    toolbox = base.Toolbox()
    toolbox.register("attr_float", random.random)
    toolbox.register("individual", tools.initRepeat, individual_class, toolbox.attr_float,
                     genes)
    toolbox.register("population", tools.initRepeat, list, toolbox.individual)
    toolbox.register("mutate", tools.mutPolynomialBounded, eta=15.0, low=0.0, up=1.0,
                     indpb=0.1)

    def to_images(individuals) -> torch.Tensor:
        return torch.from_numpy(np.asarray(individuals, dtype=np.float32)).view(-1, *shape)

    if chunk_size is None:
        def evaluate(individual):
            return tuple(target.scores(to_images([individual]))[0])
    else:
        def evaluate(individuals):
            return [tuple(row) for row in target.scores(to_images(individuals))]

        def chunked_map(function, individuals):
            results = []
            for i in range(0, len(individuals), chunk_size):
                results.extend(function(individuals[i:i + chunk_size]))
            return results

        toolbox.register("map", chunked_map)
    toolbox.register("evaluate", evaluate)

    elites: list = [None] * classes  # per class: the individual with the best fitness there

    def offer(individuals) -> None:
        for ind in individuals:
            for cls, value in enumerate(ind.fitness.values):
                if elites[cls] is None or value > elites[cls].fitness.values[cls]:
                    elites[cls] = ind

    def evaluate_all(individuals) -> float:
        start = time.perf_counter()
        for ind, fit in zip(individuals, toolbox.map(toolbox.evaluate, individuals)):
            ind.fitness.values = fit
        return time.perf_counter() - start

    population = toolbox.population(n=init_size)
    evaluate_all(population)
    offer(population)
    after_init, cpu_after_init = time.perf_counter(), time.process_time()
    variation = evaluation = 0.0
    for _ in range(generations):
        mark = time.perf_counter()
        filled = [e for e in elites if e is not None]
        children = [toolbox.clone(random.choice(filled)) for _ in range(offspring)]
        for child in children:
            toolbox.mutate(child)
            del child.fitness.values
        variation += time.perf_counter() - mark
        evaluation += evaluate_all(children)
        offer(children)
    end, cpu_end = time.perf_counter(), time.process_time()
    return {"rate": offspring * generations / (end - after_init),
            "cpu_rate": offspring * generations / (cpu_end - cpu_after_init),
            "variation": variation, "evaluation": evaluation, "generations": generations}


def main(argv: list[str]) -> None:
    path = argv[0] if argv and argv[0].endswith(".yaml") else str(
        REPO / "experiments" / "mnist_direct_mapelites.yaml")
    overrides = [a for a in argv if "=" in a]
    with tempfile.TemporaryDirectory() as tmp:
        experiment = load_experiment(path, ["log.progress=false", f"output_dir={tmp}/run",
                                            *overrides])
        loop = full_loop(experiment)
    target, genome_type = loop["target"], loop["genome_type"]
    classifier = classifier_only(target, loop["batches"])
    params = experiment.algorithm
    rows = [("classifier only (same chunks, after the run)", classifier),
            ("classifier only (same chunks, paired: inside the run)", loop["paired"]),
            ("evofool full loop (ask/score/tell, log, checkpoints)",
             (loop["rate"], loop["cpu_rate"]))]
    deap = []
    if genome_type.name == "direct" and experiment.algorithm_type == "map_elites":
        shape = tuple(genome_type.shape)
        batched = deap_map_elites(target, shape, params.init_size, params.offspring,
                                  generations=20, chunk_size=experiment.runtime.batch_size)
        per_image = deap_map_elites(target, shape, params.init_size, params.offspring,
                                    generations=5, chunk_size=None)
        rows += [(f"DEAP, batched evaluate (chunks of {experiment.runtime.batch_size})",
                  (batched["rate"], batched["cpu_rate"])),
                 ("DEAP, one evaluate call per image",
                  (per_image["rate"], per_image["cpu_rate"]))]
        deap = [("batched evaluate", batched), ("one call per image", per_image)]

    print(f"experiment: {path} {' '.join(overrides)}")
    print(f"device: {target.device}, torch threads: {torch.get_num_threads()}, "
          f"{loop['evaluations'] / loop['generations']:g} candidates/generation, "
          f"runtime.batch_size {experiment.runtime.batch_size}, "
          f"{loop['evaluations']:,} evaluations timed "
          f"({loop['generations']} generations after generation 0, {loop['seconds']:.2f} s)")
    print()
    width = max(len(name) for name, _ in rows)
    print(f"| {'what':<{width}} | evaluations/s | vs classifier | same, per CPU second |")
    print(f"|{'-' * (width + 2)}|--------------:|--------------:|---------------------:|")
    for name, (rate, cpu_rate) in rows:
        print(f"| {name:<{width}} | {rate:>13,.0f} | {rate / classifier[0]:>13.2f} "
              f"| {cpu_rate / classifier[1]:>20.2f} |")
    print()
    print(f"loop / classifier ratio: {loop['rate'] / classifier[0]:.2f} wall-clock, "
          f"{loop['cpu_rate'] / classifier[1]:.2f} per CPU second; paired: "
          f"{loop['rate'] / loop['paired'][0]:.2f} wall-clock, "
          f"{loop['cpu_rate'] / loop['paired'][1]:.2f} per CPU second (target >= 0.80)")
    generations = loop["generations"]
    per_gen = 1e3 * loop["seconds"] / generations
    inside = 1e3 * loop["inside_evaluate"] / generations
    render = 1e3 * loop["render"] / generations
    print(f"evofool, per generation: {per_gen:.2f} ms in all, {inside:.2f} ms inside "
          f"ChunkEvaluator ({loop['chunks'] / generations:g} call(s): {render:.2f} ms render, "
          f"{inside - render:.2f} ms Target.scores), {per_gen - inside:.2f} ms the rest "
          f"(ask, tell, log, checkpoints)")
    for label, result in deap:
        gens = result["generations"]
        print(f"DEAP {label}, per generation: {1e3 * result['variation'] / gens:.2f} ms "
              f"clone + mutPolynomialBounded, {1e3 * result['evaluation'] / gens:.2f} ms "
              f"toolbox.map(toolbox.evaluate, ...) ({gens} generations timed)")


if __name__ == "__main__":
    main(sys.argv[1:])
