"""Find a genome type by name: built-ins, ``evofool.genomes`` entry points, or a dotted path."""
from __future__ import annotations

from evofool.genomes.base import GenomeType
from evofool.plugins import PluginRegistry

ENTRY_POINT_GROUP = "evofool.genomes"

GENOME_TYPES = PluginRegistry("genome type", GenomeType, ENTRY_POINT_GROUP, {
    "direct": "evofool.genomes.direct:DirectGenome",
    "cppn": "evofool.genomes.cppn:CppnGenome",
    "perturbation": "evofool.genomes.perturbation:PerturbationGenome",
})
register_genome_type = GENOME_TYPES.register
available_genome_types = GENOME_TYPES.names
get_genome_type = GENOME_TYPES.get
