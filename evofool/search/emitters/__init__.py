"""Emitters of MAP-Elites (``algorithm.emitters``): see :mod:`evofool.search.emitters.base`."""
