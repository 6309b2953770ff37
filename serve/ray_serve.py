"""The same server as a Ray Serve deployment with N replicas: ``python -m serve.ray_serve --replicas 2`` (``make serve-ray``).

Each replica is one Ray actor that loads the model itself (from ``--model``, a path every node can read, or the
embedded SmolLM2) and runs its own engine and :func:`serve.api.create_app`, so every route, limit, error and metric
is the single server's. Ray Serve's HTTP proxy spreads requests over the replicas; requests that land on the same
replica batch together in its engine. ``/health`` names the replica's process (``pid``), which shows the spread.

Where it listens: Ray Serve's proxy binds ``--host``/``--port`` (127.0.0.1:8000 by default); anything but loopback
needs an API key, exactly as for ``python -m serve`` (:func:`serve.settings.check_bind`). ``--ray auto`` (the
default) joins the cluster named by ``RAY_ADDRESS``, else one started here by ``ray start --head``, else starts a
local Ray; ``--ray ray://head:10001`` joins that cluster (docs/SERVING.md, "Scale out on Ray").

What is per replica: the admission queue (``--max-queue`` each, so N replicas admit N times as many), the
``/metrics`` counters (a scrape through the proxy reads one replica's), and the recent-requests list. What is per
node: the experiment book, the run records and the vector library live in the node's data folder, shared by the
replicas of one machine; on a cluster only a ``STEERSCOPE_DATA`` (and ``--library``) that every node mounts shares them.

Modules of this package are imported by the run registry, so Ray is imported inside functions only.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from interp.errors import SteerscopeError
from serve.settings import ServerSettings, check_bind

APP_NAME = "steerscope"
THREADS_PER_REPLICA = 1  # torch threads and Ray CPUs per replica: N replicas on N cores do not oversubscribe
# Requests Ray Serve lets into one replica beyond its own admission queue: /health and /metrics must not wait behind a
# full queue, and a request over the replica's limit should reach it and get the server's 429 rather than wait.
SPARE_REQUESTS = 16


class ReplicaServer:
    """What one replica holds: its model and the app over it (Ray Serve wraps this class, see :func:`deployment`)."""

    def __init__(self, settings: ServerSettings, library_folder: str | None, threads: int = THREADS_PER_REPLICA) -> None:
        import torch

        from interp import load_model

        torch.set_num_threads(threads)
        self.settings = settings
        self.library_folder = library_folder
        self.model = load_model(settings.model)

    def __serve_build_asgi_app__(self) -> Any:
        """Ray Serve calls this once per replica, after ``__init__``: the FastAPI app over this replica's model."""
        from serve.api import create_app
        from serve.experiments import ExperimentBook
        from serve.library import VectorLibrary

        library = VectorLibrary(self.library_folder, max_upload_bytes=self.settings.max_upload_bytes)
        # One book on disk for the replicas of a node (for every node only if STEERSCOPE_DATA is a shared mount):
        # each reads what the others appended before it answers.
        experiments = ExperimentBook(model=self.model)
        return create_app(self.model, self.settings, library=library, experiments=experiments)


def deployment(settings: ServerSettings, *, replicas: int, library_folder: str | None = None, threads: int = THREADS_PER_REPLICA):
    """The Ray Serve application: ``replicas`` copies of :class:`ReplicaServer`, ready for ``serve.run``.

    The app is built on each replica (``@serve.ingress()`` with ``__serve_build_asgi_app__``, Ray Serve's pattern for
    an app that needs the replica's own state), so no model or app is pickled to the replicas: only the settings.
    """
    from ray import serve

    check_replicas(replicas)
    ingress = serve.ingress()(ReplicaServer)
    options = {"num_cpus": threads}
    limit = settings.max_queue + SPARE_REQUESTS
    app = serve.deployment(name="SteerscopeServer", num_replicas=replicas, ray_actor_options=options, max_ongoing_requests=limit)
    return app(ingress).bind(settings, library_folder, threads)


def check_replicas(replicas: int) -> int:
    from interp.errors import InputError

    if isinstance(replicas, bool) or not isinstance(replicas, int) or not 1 <= replicas <= 64:
        raise InputError(f"--replicas must be a whole number from 1 to 64 (got {replicas!r}).")
    return replicas


def start(settings: ServerSettings, *, replicas: int, library_folder: str | None = None, address: str = "auto") -> bool:
    """Start Ray (or join it), Ray Serve's proxy on ``settings.host:port``, and the replicas; True if this started Ray.

    Returns once every replica has loaded its model and answers. Refuses (InputError) a non-loopback bind without
    an API key before anything starts.
    """
    from ray import serve

    from interp.distributed import check_ray_address, connect_ray

    check_bind(settings)
    check_replicas(replicas)
    started = connect_ray(check_ray_address(address))
    try:
        serve.start(http_options={"host": settings.host, "port": settings.port})
        serve.run(deployment(settings, replicas=replicas, library_folder=library_folder), name=APP_NAME, route_prefix="/")
    except BaseException:
        stop(started)
        raise
    return started


def stop(started_ray: bool) -> None:
    """Shut Ray Serve down (its proxy and replicas), and Ray too if :func:`start` started it."""
    import ray
    from ray import serve

    if ray.is_initialized():
        serve.shutdown()
        if started_ray:
            ray.shutdown()


def main(argv: list[str] | None = None) -> int:
    """``python -m serve.ray_serve --replicas N`` plus every option of ``python -m serve``; Ctrl-C stops it."""
    import signal
    import time

    from serve.__main__ import parse_settings

    parser = argparse.ArgumentParser(
        prog="python -m serve.ray_serve",
        description="Serve Steerscope's API as a Ray Serve deployment. Also takes every option of python -m serve.",
    )
    parser.add_argument("--replicas", type=int, default=2, help="replicas, each loading the model (default: %(default)s)")
    parser.add_argument(
        "--ray", default="auto", metavar="auto|ADDRESS", help="auto (RAY_ADDRESS, else a local Ray) or ray://HOST:10001"
    )
    ours, rest = parser.parse_known_args(argv)
    try:
        settings, library_folder = parse_settings(rest)
        check_bind(settings)
        check_replicas(ours.replicas)
        started = start(settings, replicas=ours.replicas, library_folder=library_folder, address=ours.ray)
    except SteerscopeError as error:
        print(f"steerscope serve: {error}", file=sys.stderr)
        return 2
    print(
        f"Serving on http://{settings.host}:{settings.port}/v1 with {ours.replicas} Ray Serve replica(s); Ctrl-C stops.",
        flush=True,
    )
    signal.signal(signal.SIGTERM, _stop_on_signal)  # `kill` stops the replicas too, as Ctrl-C does
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("Stopping the replicas.", flush=True)
    finally:
        stop(started)
    return 0


def _stop_on_signal(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
