"""Issue 15, "safe to open a stranger's run": crafted experiment files, overrides and command
line values end in ONE line on stderr (``evofool: error: ...``, exit 2), in bounded time and
memory, never in a traceback, a hang or a silent accept; sensible files still load.

Every case goes through the real entry point, ``evofool.cli.main``.
"""
from __future__ import annotations

import resource
import sys
import time
import tracemalloc
import uuid
from pathlib import Path

import pytest
import torch
import yaml

from evofool.cli import main
from evofool.config import load_experiment
from evofool.runner import run_experiment
from conftest import REPO
from test_cli_errors import assert_one_line_error

SECONDS = 5.0            # each case, on a busy 2-core machine
MESSAGE_CHARS = 600      # one line stays readable: values are cut to ~80 characters
MEMORY_MB = 200          # alias bombs may not grow the process by more than this

BASE = {
    "name": "crafted", "seed": 1, "model": "lenet-mnist",
    "genome": {"type": "direct"},
    "algorithm": {"type": "map_elites", "init_size": 4, "offspring": 4},
    "budget": {"generations": 1},
    "log": {"progress": False, "checkpoint_every": 1},
    "runtime": {"device": "cpu"},
}


def dump(data: dict) -> str:
    dumper = yaml.CSafeDumper if getattr(yaml, "__with_libyaml__", False) else yaml.SafeDumper
    return yaml.dump(data, Dumper=dumper, sort_keys=False, default_flow_style=None)


def experiment(tmp_path: Path, text: str | bytes | None = None, **sections) -> Path:
    """An experiment file: ``text`` as it is (after the base keys unless it starts with
    '!raw'), or the base experiment with ``sections`` replacing keys."""
    path = tmp_path / "crafted.yaml"
    data = {**BASE, "output_dir": str(tmp_path / "run"), **sections}
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None and text.startswith("!raw"):
        path.write_text(text[len("!raw"):])
    else:
        path.write_text(dump(data) + (text or ""))
    return path


def run_cli_timed(capsys, argv) -> tuple[int, str, float]:
    start = time.perf_counter()
    code = main([str(a) for a in argv])
    elapsed = time.perf_counter() - start
    return code, capsys.readouterr().err.strip(), elapsed


def assert_refused(capsys, argv, *fragments: str) -> str:
    """Exit code 2, one line starting 'evofool: error:', no traceback, short, in time."""
    code, err, elapsed = run_cli_timed(capsys, argv)
    assert code == 2, (code, err)
    assert_one_line_error(code, err, *fragments)
    assert len(err) <= MESSAGE_CHARS, f"{len(err)} characters: {err[:300]}..."
    assert elapsed < SECONDS, f"took {elapsed:.1f} s"
    return err


def laughs(levels: int = 9, key: str = "seed", mapping: bool = False) -> str:
    """The billion-laughs document: 9 ** levels values through aliases, under ``key``."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels + 1):
        if mapping:
            items = ", ".join(f"k{j}: *l{i - 1}" for j in range(9))
            lines.append(f"l{i}: &l{i} {{{items}}}")
        else:
            lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + f"\n{key}: *l{levels}\n"


# --- alias bombs first: bounded time and memory (ru_maxrss is a high-water mark) ---------

def _bomb_file(tmp_path):
    return ["run", experiment(tmp_path, "!raw" + laughs(key="seed"))]


def _bomb_classes(tmp_path):
    text = laughs(key="classes_bomb").replace("classes_bomb: ", "model:\n  classes: ")
    return ["run", experiment(tmp_path, "!raw" + text)]


def _bomb_unknown_key(tmp_path):
    return ["run", experiment(tmp_path, laughs(key="junk"))]


def _bomb_mapping(tmp_path):
    return ["run", experiment(tmp_path, "!raw" + laughs(levels=7, key="genome", mapping=True))]


def _bomb_override(tmp_path):
    flow = "[" + ", ".join(["&a0 [1, 2, 3, 4, 5, 6, 7, 8, 9]"] + ["*a0"] * 8) + "]"
    for i in range(1, 9):
        flow = "[" + ", ".join([f"&a{i} {flow}"] + [f"*a{i}"] * 8) + "]"
    return ["run", experiment(tmp_path), f"model.classes={flow}"]


@pytest.mark.parametrize("build, fragments", [
    pytest.param(_bomb_file, ["crafted.yaml", "aliases are expanded"], id="seed"),
    pytest.param(_bomb_classes, ["crafted.yaml", "aliases are expanded"], id="model.classes"),
    pytest.param(_bomb_unknown_key, ["crafted.yaml", "aliases are expanded"], id="unknown-key"),
    pytest.param(_bomb_mapping, ["crafted.yaml", "aliases are expanded"], id="mappings"),
    pytest.param(_bomb_override, ["override 'model.classes=...'", "aliases are expanded"],
                 id="override"),
])
def test_alias_bombs_are_refused_in_bounded_time_and_memory(capsys, tmp_path, build, fragments):
    argv = build(tmp_path)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    try:
        assert_refused(capsys, argv, *fragments)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before  # KiB on Linux
    assert peak < MEMORY_MB * 2 ** 20, f"Python allocations peaked at {peak / 2 ** 20:.0f} MB"
    assert grown_kb < MEMORY_MB * 1024, f"RSS grew by {grown_kb / 1024:.0f} MB"


# --- crafted files and overrides: one line each --------------------------------------------

def _file(text=None, **sections):
    return lambda tmp_path: ["run", experiment(tmp_path, text, **sections)]


def _override(*overrides):
    return lambda tmp_path: ["run", experiment(tmp_path), *overrides]


def _ten_mb(tmp_path):
    path = experiment(tmp_path)
    with open(path, "a") as handle:
        handle.write(("# padding " + "x" * 89 + "\n") * 100_000)
    return ["run", path]


def _many_values(tmp_path):
    return ["run", experiment(tmp_path, "junk: [" + "0," * 260_000 + "0]\n")]


DIRECT = {"type": "direct"}
CPPN = {"type": "cppn"}
GA = {"type": "ga", "population": 10, "elite": 2}
MAP_ELITES = BASE["algorithm"]

CASES = [
    # the shape of the document
    pytest.param(_file("!raw- 1\n- 2\n"), ["crafted.yaml", "must be a YAML mapping", "a list"],
                 id="yaml-is-a-list"),
    pytest.param(_file("!raw"), ["crafted.yaml", "must be a YAML mapping", "empty"],
                 id="yaml-is-empty"),
    pytest.param(_file("!rawjust a sentence\n"), ["must be a YAML mapping"], id="yaml-is-a-string"),
    pytest.param(_ten_mb, ["crafted.yaml", "larger than 4,194,304 bytes"], id="ten-mb-file"),
    pytest.param(_many_values, ["crafted.yaml", "more than 250,000 values"], id="too-many-values"),
    pytest.param(_file("!raw" + "seed: " + "[" * 200 + "]" * 200 + "\n"),
                 ["crafted.yaml", "nested deeper than 64 levels"], id="200-deep"),
    pytest.param(_file("!raw" + "seed: " + "{a: " * 100_000 + "}" * 100_000 + "\n"),
                 ["crafted.yaml", "nest"], id="100000-deep"),  # libyaml's own limit is 1000
    pytest.param(_file("junk: &loop [1, *loop]\n"), ["crafted.yaml", "recursive alias"],
                 id="recursive-alias"),
    pytest.param(_file("seed: 2\n"), ["crafted.yaml", "duplicate key 'seed'", "line"],
                 id="duplicate-key"),
    pytest.param(_file("!raw" + dump({k: v for k, v in BASE.items() if k != "genome"})
                       + "genome:\n  type: direct\n  size: 28\n  size: 20\n"),
                 ["duplicate key 'size' at line", "first at line"], id="duplicate-nested-key"),
    pytest.param(_file("!rawseed: " + "7" * 5000 + "\n"),
                 ["crafted.yaml", "integer of 5,000 characters"], id="5000-digit-integer"),
    pytest.param(_file(b"seed: \xff\xfe\n"), ["crafted.yaml", "not UTF-8"], id="not-utf8"),
    pytest.param(_file("!raw{[1, 2]: 3}\n"), ["crafted.yaml", "malformed YAML"],
                 id="unhashable-key"),
    pytest.param(_file("1: 2\n"), ["crafted.yaml", "unknown key '1'"], id="integer-key"),
    pytest.param(_file(genome={"type": "direct", 3.5: "x"}), ["unknown key 'genome.3.5'"],
                 id="float-key-in-genome"),
    pytest.param(_file("? " + "k" * 10_000 + "\n: 1\n"), ["crafted.yaml", "unknown key 'kkkk"],
                 id="10k-character-key"),
    pytest.param(_file(genome={"type": ["direct"] * 1000}), ["genome = {'type': ['direct'"],
                 id="genome-type-is-a-list"),
    # sizes and limits
    pytest.param(_file(genome={"type": "direct", "size": 3000}),
                 ["genome.size = 3000", "at most 1,024"], id="direct-size-3000"),
    pytest.param(_file(genome={"type": "cppn", "size": 3000}),
                 ["genome.size = 3000", "at most 1,024"], id="cppn-size-3000"),
    pytest.param(_file("!raw" + dump(BASE).replace(
        "offspring: 4", "offspring: 1e9")),
        ["algorithm.offspring = '1e9'", "positive integer", "write 1000000000"],
        id="offspring-1e9-is-a-string"),
    pytest.param(_override("algorithm.offspring=1000000000"),
                 ["algorithm.offspring = 1000000000", "at most 1,000,000"], id="offspring-1e9"),
    pytest.param(_override("algorithm.init_size=1e8"), ["algorithm.init_size = '1e8'"],
                 id="init_size-1e8-is-a-string"),
    pytest.param(_override("algorithm.init_size=100000000"),
                 ["algorithm.init_size = 100000000", "at most 1,000,000"], id="init_size-1e8"),
    pytest.param(_file(algorithm={**GA, "population": 10 ** 7}),
                 ["algorithm.population = 10000000", "2 to 1,000,000"], id="population-1e7"),
    pytest.param(_file(model={"classes": list(range(100_001))}),
                 ["model.classes = [0, 1, 2", "at most 100,000"], id="100001-classes"),
    pytest.param(_file(model={"classes": [1.5, 2.0]}), ["model.classes = [1.5, 2.0]"],
                 id="classes-are-floats"),
    pytest.param(_file(model={"classes": [10 ** 7]}), ["model.classes", "999,999"],
                 id="class-id-too-large"),
    pytest.param(_override("runtime.batch_size=1000000"), ["runtime.batch_size", "100,000"],
                 id="batch-size-1e6"),
    pytest.param(_override("runtime.threads=1000000"), ["runtime.threads", "1,024"],
                 id="threads-1e6"),
    pytest.param(_file(seed=2 ** 70), ["seed = 1180591620717411303424", "2**63"],
                 id="seed-2**70"),
    pytest.param(_override("seed=-1"), ["seed = -1", "[0, 2**63 - 1]"], id="seed-negative"),
    pytest.param(_override("budget.generations=0"), ["budget.generations = 0"],
                 id="generations-0"),
    pytest.param(_override(f"budget.generations={2 ** 70}"),
                 ["budget.generations", "64 bits"], id="generations-2**70"),
    pytest.param(_override("log.checkpoint_every=-1"), ["log.checkpoint_every = -1"],
                 id="checkpoint-every-negative"),
    # the GA
    pytest.param(_file(algorithm={**GA, "target_classes": []}),
                 ["algorithm.target_classes = []", "non-empty"], id="ga-no-target-classes"),
    pytest.param(_file(algorithm={**GA, "target_classes": [1, 1]}),
                 ["algorithm.target_classes = [1, 1]", "distinct"], id="ga-duplicate-targets"),
    pytest.param(_file(algorithm={**GA, "population": 10, "elite": 10}),
                 ["algorithm: elite = 10 must be smaller than population = 10"],
                 id="ga-elite-equals-population"),
    # non-finite floats
    pytest.param(_file("!raw" + dump({**BASE, "genome": CPPN})
                       + "genome:\n  type: cppn\n  weight_limit: .inf\n"),
                 ["duplicate key 'genome'"], id="genome-twice"),
    pytest.param(_override("genome.type=cppn", "genome.weight_limit=.inf"),
                 ["genome.weight_limit = inf", "not a finite number"], id="cppn-weight-limit-inf"),
    pytest.param(_override("genome.weight_limit=1e300", "genome.type=cppn"),
                 ["genome.weight_limit = '1e300'", "YAML reads '1e300' as text; write 1.0e+300"],
                 id="cppn-weight-limit-1e300-string"),
    pytest.param(_override("genome.type=cppn", "genome.weight_limit=1.0e+300"),
                 ["genome.weight_limit = 1e+300", "at most 1,000,000"],
                 id="cppn-weight-limit-huge"),
    pytest.param(_override("genome.mutation_eta=.inf"),
                 ["genome.mutation_eta = inf", "not a finite number"], id="mutation-eta-inf"),
    pytest.param(_override("genome.mutation_rate=.nan"), ["genome.mutation_rate = nan"],
                 id="mutation-rate-nan"),
    pytest.param(_override("genome.crossover_eta=-.inf"), ["genome.crossover_eta = -inf"],
                 id="crossover-eta-minus-inf"),
    pytest.param(_override("budget.stop_confidence=.nan"), ["budget.stop_confidence = nan"],
                 id="stop-confidence-nan"),
    # names, paths, devices
    pytest.param(_file(name="../../x"), ["name = '../../x'", "folder name"], id="name-dotdot-path"),
    pytest.param(_file(name=".."), ["name = '..'"], id="name-dotdot"),
    pytest.param(_file(name="a\nb"), ["name = 'a\\nb'"], id="name-with-newline"),
    pytest.param(_file(model={"spec": "lenet-mnist\nrm -rf"}), ["model.spec = 'lenet-mnist\\nrm"],
                 id="spec-with-newline"),
    pytest.param(_override("runtime.device=cuda:99999"), ["runtime.device = 'cuda:99999'"],
                 id="device-cuda-index-too-long"),
    pytest.param(_file(runtime={"device": "cpu\n"}), ["runtime.device = 'cpu\\n'"],
                 id="device-trailing-newline"),
    # overrides themselves
    pytest.param(_override("x" * 10_000), ["override 'xxxx", "key.sub=value"],
                 id="10k-override-without-equals"),
    pytest.param(_override(".".join(["a"] * 100) + "=1"), ["dotted parts"], id="override-100-deep"),
    pytest.param(_override("model.classes=[0.5, 1.5]"), ["model.classes = [0.5, 1.5]"],
                 id="override-classes-floats"),
    pytest.param(_override("seed={a: 1, a: 2}"), ["override 'seed=...'", "duplicate key 'a'"],
                 id="override-duplicate-key"),
]


@pytest.mark.parametrize("build, fragments", CASES)
def test_crafted_experiments_end_in_one_line(capsys, tmp_path, build, fragments):
    assert_refused(capsys, build(tmp_path), *fragments)


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_mps_without_mps_is_one_line(capsys, tmp_path):
    assert_refused(capsys, ["run", experiment(tmp_path), "runtime.device=mps"],
                   "runtime.device 'mps'", "no Apple MPS device")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_index_without_cuda_is_one_line(capsys, tmp_path):
    assert_refused(capsys, ["run", experiment(tmp_path), "runtime.device=cuda:3"],
                   "runtime.device 'cuda:3'", "no CUDA GPU")


# --- python: model factories that misbehave ---------------------------------------------

FACTORIES = {
    "raises": ("def build(**kwargs):\n    raise RuntimeError('no weights here\\nsecond line')\n",
               ["factory 'build' raised RuntimeError: no weights here"]),
    "exits": ("import sys\ndef build(**kwargs):\n    sys.exit(3)\n",
              ["factory 'build' called sys.exit(3)"]),
    "exits-on-import": ("import sys\nsys.exit('bye')\ndef build(**kwargs):\n    pass\n",
                        ["importing module", "called sys.exit(bye)"]),
    "raises-on-import": ("1 / 0\n", ["importing module", "ZeroDivisionError"]),
    "returns-junk": ("def build(**kwargs):\n    return 42\n", ["returned a int"]),
    "huge-input-size": ("import torch\ndef build(**kwargs):\n"
                        "    return torch.nn.Flatten(), {'input_size': 100000}\n",
                        ["input_size = 100000", "at most 1,024"]),
    "nan-mean": ("import torch\ndef build(**kwargs):\n"
                 "    return torch.nn.Flatten(), {'mean': [float('nan')] * 3}\n",
                 ["mean = [nan, nan, nan]", "not a finite number"]),
}


@pytest.mark.parametrize("name", list(FACTORIES))
def test_python_model_factories_that_misbehave(capsys, tmp_path, monkeypatch, name):
    source, fragments = FACTORIES[name]
    module = f"crafted_models_{uuid.uuid4().hex}"
    (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        err = assert_refused(capsys, ["run", experiment(tmp_path),
                                      f"model.spec=python:{module}:build"], *fragments)
    finally:
        sys.modules.pop(module, None)
    assert f"python:{module}:build" in err


# --- other commands ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("crafted_run")
    run_experiment(load_experiment(experiment(folder)))
    return folder / "run"


@pytest.mark.parametrize("value", ["nan", "-1", "2", "0", "abc", "inf", "x" * 500])
def test_transfer_threshold_outside_0_1_is_one_line(capsys, tmp_path, value):
    err = assert_refused(capsys, ["transfer", tmp_path / "no-run", "--model", "lenet-mnist",
                                  "--out", tmp_path / "out", "--threshold", value],
                         "--threshold", "(0, 1]")
    assert not (tmp_path / "out").exists()
    assert len(err) < 200


@pytest.mark.parametrize("command", ["rescore", "transfer"])
def test_unknown_device_is_one_line(capsys, tmp_path, finished_run, command):
    argv = [command, finished_run, "--model", "lenet-mnist", "--device", "banana"]
    if command == "transfer":
        argv += ["--out", tmp_path / "out"]
    assert_refused(capsys, argv, "--device 'banana'", "cuda:N")


def test_rescore_into_an_unwritable_place_is_one_line(capsys, tmp_path, finished_run):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert_refused(capsys, ["rescore", finished_run, "--model", "lenet-mnist", "--device", "cpu",
                            "--out", blocker / "sub" / "scores"],
                   "rescore --out", "cannot write")


# --- correct accepts ------------------------------------------------------------------------

def test_transfer_and_rescore_with_good_values_still_work(capsys, tmp_path, finished_run):
    assert main(["transfer", str(finished_run), "--model", "lenet-mnist", "--device", "cpu",
                 "--out", str(tmp_path / "transfer"), "--threshold", "1"]) == 0
    assert "at or above 50% and 1," in capsys.readouterr().out
    assert main(["rescore", str(finished_run), "--model", "lenet-mnist", "--device", "cpu",
                 "--out", str(tmp_path / "new" / "scores")]) == 0
    assert (tmp_path / "new" / "scores.csv").is_file()


SHIPPED = sorted((REPO / "experiments").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_experiment_still_validates(path):
    assert load_experiment(path).name == path.stem


@pytest.mark.parametrize("path, overrides", [
    ("mnist_direct_mapelites.yaml", ["seed=3", "budget.generations=50"]),
    ("mnist_direct_mapelites.yaml", ["seed=3", "budget.generations=50", "genome.crossover=sbx"]),
    ("mnist_direct_mapelites.yaml", ["budget.stop_confidence=0.9999"]),
    ("imagenet_cppn_mapelites.yaml", ["model.spec=torchvision:alexnet:IMAGENET1K_V1"]),
    ("imagenet_direct_mapelites.yaml", ["model.weights_path=alexnet-owt-7be5be79.pth"]),
    ("imagenet_cppn_mapelites.yaml", ["model.precision=bf16", "model.channels_last=true"]),
    ("mnist_direct_ga.yaml", ["algorithm.target_classes=[3]"]),
])
def test_readme_commands_still_validate(path, overrides):
    load_experiment(REPO / "experiments" / path, overrides)


def test_small_anchors_and_merge_keys_still_load(tmp_path):
    path = experiment(tmp_path, "!raw" + f"""
name: anchors
seed: &seven 7
output_dir: {tmp_path / "run"}
model: {{spec: lenet-mnist, classes: &digits [1, 3, 5]}}
genome: {{<<: &rates {{type: direct, mutation_rate: 0.2, mutation_eta: 20}}, mutation_eta: 10}}
algorithm: {{type: ga, population: 10, elite: 9, target_classes: *digits}}
budget: {{generations: *seven}}
runtime: {{device: cpu}}
""")
    loaded = load_experiment(path)
    assert loaded.model.classes == [1, 3, 5] and loaded.algorithm.target_classes == [1, 3, 5]
    assert loaded.genome.mutation_rate == 0.2 and loaded.genome.mutation_eta == 10.0
    assert loaded.seed == 7 and loaded.budget.generations == 7


def test_values_at_the_limits_are_accepted(tmp_path):
    path = experiment(tmp_path, seed=2 ** 63 - 1, genome={"type": "direct", "size": 1024},
                      algorithm={"type": "map_elites", "init_size": 1_000_000,
                                 "offspring": 1_000_000},
                      runtime={"device": "cpu", "batch_size": 100_000, "threads": 1024},
                      model={"classes": list(range(100_000))})
    loaded = load_experiment(path, ["genome.mutation_eta=1000000.0"])
    assert loaded.seed == 2 ** 63 - 1 and len(loaded.model.classes) == 100_000
    assert loaded.genome.size == 1024 and loaded.algorithm.offspring == 1_000_000
