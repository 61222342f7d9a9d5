"""Genome types: how images are encoded, varied and rendered.

A genome type is one class (see :class:`evofool.genomes.base.GenomeType`) plus one
registration: built in (``direct``), an entry point in the ``evofool.genomes`` group,
or a dotted path ``package.module:ClassName`` in the experiment YAML.
"""
from evofool.genomes.base import GenomeType
from evofool.genomes.registry import available_genome_types, get_genome_type, register_genome_type

__all__ = ["GenomeType", "available_genome_types", "get_genome_type", "register_genome_type"]
