"""Search: the ask/tell base, MAP-Elites and the GA, the per-class archive, batched
evaluation and the algorithm registry. Knows nothing of run directories or reports."""
