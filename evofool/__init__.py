"""evofool: evolve images that image classifiers label with high confidence.

Public entry points:
    evofool.config.load_experiment   read and validate an experiment YAML
    evofool.run.run_experiment       run (or resume) an experiment into a run directory
    evofool.archive.Archive          the per-class elites (MAP-Elites cells)
    evofool.genomes.registry         genome types (direct pixels, CPPN, plugins)
    evofool.fitness.registry         classifier targets (lenet-mnist, ...)
"""
__version__ = "0.1.0"
