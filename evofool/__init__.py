"""evofool: evolve images that image classifiers label with high confidence.

Public entry points (docs/API.md walks through them):
    evofool.run(experiment, **overrides)   run an experiment; returns an evofool.Run
    evofool.load_run(run_dir)              open a run directory as an evofool.Run: the archive
                                           as a DataFrame, the log, montage(), elite(cls), ...
    evofool.api                            resume, transfer, retrain, train_lenet, models
    evofool.EvofoolError                   every user mistake: one line that says what to fix
    evofool.config.load_experiment         read and validate an experiment YAML
    evofool.runner.run_experiment          the engine behind evofool.run and `evofool run`
    evofool.search.archive.Archive         the per-class elites (MAP-Elites cells)
    evofool.genomes.registry               genome types (direct pixels, CPPN, plugins)
    evofool.fitness.registry               classifier targets (lenet-mnist, ...)
"""
from evofool.errors import EvofoolError

__version__ = "0.1.0"

# evofool.api imports torch; importing evofool (for __version__, the CLI's --help) should
# not, so its names are looked up on first use.
_API_NAMES = ("run", "load_run", "Run")
__all__ = ["__version__", "EvofoolError", *_API_NAMES]


def __getattr__(name: str):
    if name in _API_NAMES:
        from evofool import api
        return getattr(api, name)
    raise AttributeError(f"module 'evofool' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API_NAMES))
