"""Fitness targets: classifiers that score batches of [0, 1] images with softmax confidences."""
from evofool.fitness.registry import available_targets, build_target
from evofool.fitness.target import Target

__all__ = ["Target", "available_targets", "build_target"]
