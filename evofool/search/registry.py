"""Find a search algorithm by name: built-ins, ``evofool.algorithms`` entry points, or
``package.module:Class`` (a new algorithm is one file: see evofool.search.base)."""
from __future__ import annotations

from evofool.plugins import PluginRegistry
from evofool.search.base import SearchAlgorithm

ENTRY_POINT_GROUP = "evofool.algorithms"

ALGORITHMS = PluginRegistry("algorithm", SearchAlgorithm, ENTRY_POINT_GROUP, {
    "map_elites": "evofool.search.map_elites:MapElites",
    "ga": "evofool.search.ga:GeneticAlgorithm",
    "gradient_ascent": "evofool.search.gradient_ascent:GradientAscent",
})
register_algorithm = ALGORITHMS.register
available_algorithms = ALGORITHMS.names
get_algorithm = ALGORITHMS.get
