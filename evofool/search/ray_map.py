"""Scoring on Ray: a ``toolbox.map`` whose workers are Ray actors (``evaluation.backend: ray``).

Each worker builds the experiment's genome type and target once, in its own process (on its
own GPU with ``gpus_per_worker``), and keeps them. The driver ships each chunk of genomes
(small; a chunk of 400 rendered ImageNet images would be ~240 MB of pixels) and gets the
chunk's scores back; results are put back in chunk order, so a fixed seed gives the same
archive with one worker, N workers or the local backend (each chunk is scored whole, by the
same code, on the same kind of device).

A worker that dies (killed, out of memory, its node lost) has its chunk scored again by
another worker, and a replacement is started; the run goes on with the same result. Every
wait is bounded by ``evaluation.timeout_s``.
"""
from __future__ import annotations

import os
import socket
import sys
from collections import deque

import numpy as np

from evofool.errors import EvofoolError, one_line

MAX_REPLACEMENTS_PER_WORKER = 3  # then the run stops: something kills every worker
_POLL_S = 0.5  # ray.wait returns this often, so that Ctrl-C and SIGTERM stop the run promptly


def _import_ray():
    try:
        import ray
    except ImportError:
        raise EvofoolError("evaluation.backend: ray needs Ray: pip install \"evofool[ray]\"") \
            from None
    return ray


class ScoringWorker:
    """One Ray actor: the experiment's genome type and target, built once in its process."""

    def __init__(self, config: dict, device: str) -> None:
        import torch

        from evofool.config import validate_experiment
        from evofool.runner import build_scoring, make_evaluator
        torch.set_num_threads(1)  # Ray gives each worker one CPU
        # The driver validated this config (and trusted the code it names) before sending it.
        experiment = validate_experiment(config, "evaluation worker", config["name"])
        experiment.runtime.device = device
        experiment.runtime.render_device = device
        experiment.runtime.threads = 1
        self.evaluate = make_evaluator(experiment, *build_scoring(experiment))

    def score(self, chunk: np.ndarray) -> np.ndarray:
        return self.evaluate(chunk)


def _check_reachable(address: str, seconds: float = 5.0) -> None:
    """One line, in seconds, for a cluster that is not there (Ray itself retries for long)."""
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=seconds).close()
    except OSError as exc:
        raise EvofoolError(f"evaluation.address: cannot reach a Ray cluster at {address} "
                           f"({exc.strerror or one_line(exc, 80)}); start one with 'ray start "
                           "--head', or set evaluation.address: null to start Ray here") from None


def connect(address: str | None, workers: int) -> bool:
    """Connect to the cluster at ``address`` ('auto': the one on this machine), or start a
    private Ray instance with ``workers`` CPUs that listens on 127.0.0.1 only; True when this
    started it."""
    if address is None:
        # Ray's switch for single-machine use: every Ray server binds the loopback address
        # (by default they listen on all interfaces). Read when ray is first imported.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray = _import_ray()
    if ray.is_initialized():
        return False
    # Plugin modules (module:Class genomes, python: models) import in workers as in the driver.
    paths = [p for p in dict.fromkeys([os.getcwd(), *sys.path]) if p and os.path.isdir(p)]
    runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}}
    try:
        if address is None:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                     _node_ip_address="127.0.0.1", runtime_env=runtime_env,
                     configure_logging=False)
            return True
        if address != "auto":
            _check_reachable(address)
        ray.init(address=address, log_to_driver=False, runtime_env=runtime_env,
                 configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise EvofoolError(f"evaluation.address: {address}: cannot connect to Ray "
                           f"({one_line(exc, 200)})") from None
    return False


class RayMap:
    """``toolbox.map(evaluate, chunks)`` on Ray actors; ``close()`` when the run ends."""

    def __init__(self, config: dict, workers: int, gpus_per_worker: float = 0.0,
                 address: str | None = None, timeout_s: float = 600.0) -> None:
        self.started = connect(address, workers)  # before ray's first import
        self.ray = _import_ray()
        device = "cuda" if gpus_per_worker > 0 else "cpu"
        self._new_actor = lambda: self.ray.remote(num_cpus=1, num_gpus=gpus_per_worker)(
            ScoringWorker).remote(config, device)
        self.actors = [self._new_actor() for _ in range(workers)]
        self.timeout_s = timeout_s
        self.replacements = 0
        self.max_replacements = MAX_REPLACEMENTS_PER_WORKER * workers

    def __call__(self, evaluate, chunks) -> list[np.ndarray]:
        """``evaluate`` (the driver's own ChunkEvaluator) is not used: the workers hold
        theirs. Each chunk goes to the next free worker; results come back in order."""
        chunks = list(chunks)
        results: list = [None] * len(chunks)
        waiting, free = deque(range(len(chunks))), deque(self.actors)
        running = {}  # object ref -> (chunk index, actor)
        while waiting or running:
            while waiting and free:
                index, actor = waiting.popleft(), free.popleft()
                running[actor.score.remote(chunks[index])] = (index, actor)
            done = self._wait(list(running))
            for ref in done:
                index, actor = running.pop(ref)
                try:
                    results[index] = self.ray.get(ref)
                    free.append(actor)
                except self.ray.exceptions.RayActorError:  # the worker died: score it elsewhere
                    waiting.appendleft(index)
                    free.append(self._replace(actor))
                except self.ray.exceptions.RayTaskError as exc:  # the model itself failed
                    raise exc.as_instanceof_cause() from None
        return results

    def _wait(self, refs: list) -> list:
        waited = 0.0
        while waited < self.timeout_s:
            done, _ = self.ray.wait(refs, num_returns=1, timeout=_POLL_S)
            if done:
                return done
            waited += _POLL_S
        raise EvofoolError(f"evaluation: no chunk scored in {self.timeout_s:g} s "
                           "(evaluation.timeout_s); are the Ray workers alive?")

    def _replace(self, actor):
        self.replacements += 1
        if self.replacements > self.max_replacements:
            raise EvofoolError(f"evaluation: {self.replacements} Ray workers died in this run; "
                               "giving up (see the Ray logs in /tmp/ray/session_latest/logs)")
        self.ray.kill(actor, no_restart=True)
        replacement = self._new_actor()
        self.actors[self.actors.index(actor)] = replacement
        return replacement

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor, no_restart=True)
        self.actors = []
        if self.started:
            self.ray.shutdown()
