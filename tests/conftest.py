"""Test environment: offline hub, offline W&B, DeepSpeed on CPU. Set before anything imports them."""

import os
import sys

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Torch threads sleep instead of spinning while the other core is busy (about 10x faster on 2 cores).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_SESSION: dict = {}


def pytest_sessionstart(session: pytest.Session) -> None:
    _SESSION["session"] = session


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave with pytest's own exit status once everything is reported, skipping interpreter teardown.

    This process hosts Ray drivers, gloo process groups, DeepSpeed's shm op and W&B in turn; their
    native threads can crash while Python finalizes after every test has passed (CI saw a SIGSEGV,
    exit 139, after "369 passed"). Every fixture has already cleaned up by now.
    """
    session = _SESSION.get("session")
    if session is None or os.environ.get("PTFT_TEST_INTERPRETER_TEARDOWN") == "1":
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(session.exitstatus))


@pytest.fixture(scope="session")
def dist_env():
    """A world-size-1 gloo process group shared by every in-process DeepSpeed test of the session.

    Session-scoped on purpose: DeepSpeed caches groups, and a second `init_process_group` after a
    `destroy_process_group` in the same process fails (docs/stack.md §3).
    """
    import socket

    import torch.distributed as dist

    if not dist.is_initialized():
        with socket.socket() as s:  # a free port: other suites may run beside this one
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1",
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        import deepspeed

        deepspeed.init_distributed(dist_backend="gloo")
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


@pytest.fixture(autouse=True)
def _registries_as_found():
    """Tasks and corpora a test registers (declared tasks, a rejection-sampling stage's kept set, a spec's
    corpora) leave the process-wide registries as the test found them: later tests list the registry."""
    from ptft.tasks import corpora, declared
    from ptft.tasks.formats import templates
    from ptft.tasks.registry import REGISTRY

    live = (REGISTRY, templates.TEMPLATES, templates.TEMPLATE_OPTIONS, declared._DECLARED, corpora.CORPORA)
    saved = [(d, dict(d)) for d in live]
    yield
    for registry, copy in saved:  # in place: other modules hold these very dicts
        registry.clear()
        registry.update(copy)


@pytest.fixture
def s3_bucket(monkeypatch):
    """A real S3 API on localhost (moto's server) with one bucket; yields its URI. pyarrow's S3 filesystem
    (what `ptft.core.storage` uses for s3://) reaches it through AWS_ENDPOINT_URL, as it would a
    MinIO or any S3-compatible store."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for name, value in {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "test",
                        "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(name, value)
    boto3.client("s3").create_bucket(Bucket="ptft-test")
    yield "s3://ptft-test"
    server.stop()
