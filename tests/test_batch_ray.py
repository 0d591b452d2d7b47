"""The batch on a local Ray cluster (this machine only, 2 workers): results land in the same
destination and manifest, a worker killed mid-task is retried without a second output, and
``--ray local`` runs in a private network namespace where Ray listens on loopback only."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from facecloak import cli
from facecloak.batch.isolation import IsolationError, isolate, isolated
from facecloak.batch.session import BatchRequest, execute
from facecloak.batch.settings import BatchSettings
from facecloak.batch.sources import Filters, walk_folder
from facecloak.budget import budget_for
from facecloak.imageio import load_image
from PIL import Image

from tests.conftest import PROJECT_ROOT, shared_data

CHEAP = ["--mode", "low", "--steps", "1", "--samples", "1", "--extra-steps", "0"]


def _ray():
    try:
        import ray
    except ImportError:
        message = (
            "SKIPPED: Ray is not installed, so the --ray backend is not tested "
            "(pip install 'facecloak[ray]')"
        )
        warnings.warn(message, stacklevel=2)
        pytest.skip(message)
    return ray


def crashing_task(marker: Path):
    """The real task, but the worker dies once, right after writing astronaut's output."""

    def task(item, settings):
        from facecloak.batch.ray_backend import cloak_task

        result = cloak_task(item, settings)
        if item.out == "astronaut.png" and not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(1)
        return result

    return task


def _photos(src: Path, noise: int) -> None:
    src.mkdir()
    for name in ("astronaut.png", "camera.png"):
        (src / name).write_bytes(shared_data("photos", "skimage", name).read_bytes())
    rng = np.random.default_rng(0)
    for number in range(noise):
        pixels = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(src / f"noise{number}.jpg")
    (src / "readme.txt").write_text("not a photo")


def lost_worker_batch(tmp_path: Path) -> None:
    """Run in a fresh interpreter that has moved into a private network namespace first."""
    ray = _ray()
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    src, dest = tmp_path / "src", tmp_path / "dest"
    marker = tmp_path / "worker-died"
    settings = BatchSettings(budget_for("low").with_overrides(steps=1, samples=1, extra_steps=0))
    request = BatchRequest(
        list(walk_folder(src, Filters())), dest, settings, ray="local", ray_workers=2,
        ray_task=crashing_task(marker),
    )  # fmt: skip
    outcome = execute(request)
    results = [r.to_dict() for r in outcome.results]
    payload = {"results": results, "interrupted": outcome.interrupted}
    (tmp_path / "outcome.json").write_text(json.dumps(payload))


@pytest.mark.slow
def test_ray_local_cluster_with_a_lost_worker(tmp_path: Path) -> None:
    _ray()
    src, dest = tmp_path / "src", tmp_path / "dest"
    _photos(src, noise=4)
    marker = tmp_path / "worker-died"
    isolated_run = (
        "import sys; from pathlib import Path; from facecloak.batch.isolation import isolate; "
        "isolate(); from tests.test_batch_ray import lost_worker_batch; "
        "lost_worker_batch(Path(sys.argv[1]))"
    )
    child = subprocess.run(
        [sys.executable, "-c", isolated_run, str(tmp_path)], cwd=PROJECT_ROOT,
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert child.returncode == 0, child.stderr[-4000:]
    outcome = json.loads((tmp_path / "outcome.json").read_text())
    assert marker.exists(), "the worker was never lost: the retry was not exercised"
    statuses = {Path(r["input"]).name: r["status"] for r in outcome["results"]}
    assert statuses["astronaut.png"] == "cloaked" and statuses["readme.txt"] == "skipped"
    assert all(statuses[f"noise{n}.jpg"] == "no-face" for n in range(4))
    assert not outcome["interrupted"]

    written = sorted(p.name for p in dest.iterdir())
    expected = ["astronaut.png", "camera.png", *(f"noise{n}.jpg" for n in range(4))]
    assert written == sorted([*expected, ".facecloak-batch.jsonl", ".facecloak-batch.lock"])
    records = [
        json.loads(line)
        for line in (dest / ".facecloak-batch.jsonl").read_text().split("\n")
        if line
    ]
    done = [r["out"] for r in records if r["event"] == "done"]
    assert sorted(done) == sorted([*expected, "readme.png"])  # once each (readme: skipped)
    cloaked = load_image(dest / "astronaut.png").pixels
    assert (cloaked != load_image(src / "astronaut.png").pixels).any()


def test_ray_local_refused_outside_a_private_network_namespace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """In-process (pytest runs threads, on the machine's network) no local cluster starts:
    Ray would listen on the network address; the batch says so before starting anything."""
    _ray()
    if isolated():
        pytest.skip("this test process is already in a private network namespace")
    with pytest.raises(IsolationError, match="threads"):
        isolate()
    assert not isolated()
    src = tmp_path / "src"
    src.mkdir()
    (src / "readme.txt").write_text("not a photo")
    settings = BatchSettings(budget_for("low"), cloak=False)
    request = BatchRequest(list(walk_folder(src, Filters())), tmp_path / "dest", settings,
                           ray="local")  # fmt: skip
    with pytest.raises(IsolationError, match="not in a private network namespace"):
        execute(request)

    # The command in this same process: refused in one line, exit code 2, nothing started.
    assert len(os.listdir("/proc/self/task")) > 1  # else main() would isolate pytest itself
    dest = tmp_path / "cli-dest"
    assert cli.main(["batch", str(src), "-d", str(dest), "--ray", "local", "--no-cloak"]) == 2
    assert "--ray local refused: this process already runs" in capsys.readouterr().err
    assert not dest.exists() and not isolated()
    assert cli.main(["batch", str(src), "-d", str(dest), "--ray-allow-network"]) == 2
    assert "--ray-allow-network goes with --ray local" in capsys.readouterr().err


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _address(field: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """``0100007F:1F90`` (IPv4) or 32 hex digits (IPv6, four host-order words) from /proc/net."""
    hexaddress = field.split(":")[0]
    raw = bytes.fromhex(hexaddress)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(words)


def _bound(pid: int) -> list[tuple[str, str]]:
    """Listening TCP sockets and unconnected (receiving) UDP sockets of ``pid``'s network
    namespace. A connected UDP socket (a name lookup, say) is a client, not a listener."""
    found = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if table.startswith("tcp") and fields[3] != "0A":  # 0A: LISTEN
                continue
            if table.startswith("udp") and int(fields[2].split(":")[1], 16) != 0:
                continue  # a remote port: connected
            address = _address(fields[1])
            mapped = getattr(address, "ipv4_mapped", None)
            port = int(fields[1].split(":")[1], 16)
            found.append((table, f"{mapped or address}:{port}"))
    return found


def _loopback(text: str) -> bool:
    return ipaddress.ip_address(text.rsplit(":", 1)[0]).is_loopback


def _interfaces(pid: int) -> set[str]:
    """The network interfaces of ``pid``'s namespace."""
    lines = Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]
    return {line.split(":")[0].strip() for line in lines}


@pytest.mark.slow
def test_ray_local_listens_on_loopback_only(tmp_path: Path) -> None:
    """The real command: while its cluster runs, every socket Ray's processes listen on is on
    loopback, in a network namespace of their own; the outputs are right and ours."""
    _ray()
    src, dest = tmp_path / "src", tmp_path / "dest"
    _photos(src, noise=1)
    command = [
        sys.executable, "-m", "facecloak.cli", "batch", str(src), "-d", str(dest),
        "--ray", "local", "--ray-workers", "2", *CHEAP,
    ]  # fmt: skip
    own_namespace = os.readlink("/proc/self/ns/net")
    batch = subprocess.Popen(
        command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    sockets: set[tuple[str, str]] = set()
    names: set[str] = set()
    namespaces: set[str] = set()
    interfaces: set[str] = set()
    deadline = time.monotonic() + 900
    while batch.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
        children = _descendants(batch.pid)
        if not children:
            continue  # not started yet (nor moved into its namespace, which comes first)
        for pid in {batch.pid} | children:
            try:
                name = Path(f"/proc/{pid}/comm").read_text().strip()
                namespace = os.readlink(f"/proc/{pid}/ns/net")
                found = _bound(pid)
                interfaces |= _interfaces(pid) if namespace != own_namespace else set()
            except OSError:
                continue  # gone meanwhile
            names.add(name)
            namespaces.add(namespace)
            sockets.update(found)
    if batch.poll() is None:
        batch.kill()
    stdout, stderr = batch.communicate()
    assert batch.returncode == 0, stderr[-4000:]

    assert {"gcs_server", "raylet"} <= names, f"Ray's processes were never seen: {names}"
    assert len(namespaces) == 1, f"Ray's processes are in several namespaces: {namespaces}"
    assert own_namespace not in namespaces, "Ray runs in this machine's network namespace"
    listening = [s for s in sockets if s[0].startswith("tcp")]
    assert len(listening) >= 3, f"too few listeners seen to judge: {sockets}"
    # The namespace has loopback alone, so nothing in it is reachable from another machine;
    # every TCP listener is on loopback besides. A UDP socket on the wildcard address (seen
    # now and then, from a resolver or a metrics agent) reaches only what the namespace does.
    assert interfaces == {"lo"}, f"Ray's namespace has more than loopback: {interfaces}"
    exposed = [s for s in listening if not _loopback(s[1])]
    assert not exposed, f"Ray listens beyond loopback: {exposed}"

    expected = ["astronaut.png", "camera.png", "noise0.jpg"]
    written = sorted(p.name for p in dest.iterdir())
    assert written == sorted([*expected, ".facecloak-batch.jsonl", ".facecloak-batch.lock"])
    for path in dest.iterdir():
        info = path.stat()
        assert (info.st_uid, info.st_gid) == (os.getuid(), os.getgid()), path
    cloaked = load_image(dest / "astronaut.png").pixels
    assert (cloaked != load_image(src / "astronaut.png").pixels).any()
    assert "1 without faces" in stdout and "0 failed" in stdout, stdout
