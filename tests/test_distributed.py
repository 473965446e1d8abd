"""torch.distributed helpers: the epoch's sharding across ranks, and the collectives on two real
gloo processes started by torchrun (as users start them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from classiformer import distributed
from classiformer.distributed import done_after, shard


def torchrun(nproc: int, *args: str, timeout: float = 240, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``torchrun --standalone --nproc-per-node nproc args...`` with this interpreter."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("n", [0, 1, 5, 12, 13])
@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("start", [0, 1, 4])
def test_shards_are_disjoint_complete_and_equally_long(n: int, world: int, start: int) -> None:
    parts = [shard(n, start, r, world) for r in range(world)]
    assert len({len(p) for p in parts}) == 1  # every rank takes the same number of steps
    real = sorted(g for p in parts for g in p if g < n)
    assert real == list(range(start, max(n, start)))  # each remaining batch exactly once
    assert sum(g >= n for p in parts for g in p) < world  # no more padding than one step's worth
    slots = len(parts[0])
    # After k whole slots, the batches taken are exactly those before the stored position.
    for k in range(slots + 1):
        taken = sorted(g for p in parts for g in p[:k] if g < n)
        assert taken == list(range(start, done_after(n, start, world, k)))


def test_a_single_process_needs_no_process_group() -> None:
    assert (distributed.rank(), distributed.world_size(), distributed.is_main(), distributed.active()) == (0, 1, True, False)
    assert distributed.broadcast_object({"a": 1}) == {"a": 1}
    assert distributed.all_sum([1.5, 2.0]) == [1.5, 2.0]
    assert distributed.agree_signal(None) is None
    rows = np.arange(6, dtype=np.float32).reshape(3, 2)
    assert distributed.gather_rows(rows) is rows
    with pytest.raises(ValueError, match="boom"):
        distributed.on_main(lambda: (_ for _ in ()).throw(ValueError("boom")))


def test_timeout_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "12.5")
    assert distributed.timeout_s() == 12.5
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "soon")
    with pytest.raises(ValueError, match="CLASSIFORMER_DIST_TIMEOUT='soon'"):
        distributed.timeout_s()


WORKER = """
import json, signal, sys
import numpy as np
from classiformer import distributed as d

out = sys.argv[1]
dev = d.setup("cpu")
r, w = d.rank(), d.world_size()
vocab = d.broadcast_object({"made by": r} if r == 0 else None)
sums = d.all_sum([r + 1.0, 10.0])
part = np.full((4, 2), np.nan, dtype=np.float32)
part[r::w] = r + 1
rows = d.gather_rows(part).tolist()
stop = d.agree_signal(int(signal.SIGTERM) if r == 1 else None)
made = d.on_main(lambda: f"once by {d.rank()}")
try:
    d.on_main(lambda: 1 / 0)
    failed = None
except Exception as e:
    failed = f"{type(e).__name__}: {e}"
json.dump({"rank": r, "world": w, "main": d.is_main(), "vocab": vocab, "sums": sums, "rows": rows,
           "stop": stop, "made": made, "failed": failed}, open(f"{out}/{r}.json", "w"))
d.teardown()
"""


def test_collectives_on_two_gloo_processes(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(WORKER))
    proc = torchrun(2, str(script), str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = [json.loads((tmp_path / f"{r}.json").read_text()) for r in range(2)]
    for r, g in enumerate(got):
        assert (g["rank"], g["world"], g["main"]) == (r, 2, r == 0)
        assert g["vocab"] == {"made by": 0}  # rank 0's object on every rank
        assert g["sums"] == [3.0, 20.0]
        assert g["rows"] == [[1, 1], [2, 2], [1, 1], [2, 2]]  # each rank's rows, joined
        assert g["stop"] == 15  # rank 1's SIGTERM reaches rank 0 too
        assert g["made"] == "once by 0"
    assert got[0]["failed"] == "ZeroDivisionError: division by zero"
    assert got[1]["failed"] == "DistributedError: rank 0 failed: ZeroDivisionError: division by zero"


def test_failures_name_the_rank_that_failed_first() -> None:
    from types import SimpleNamespace

    from classiformer.cluster import describe_failures

    def failure(rank: int, code: int) -> SimpleNamespace:
        return SimpleNamespace(local_rank=rank, pid=100 + rank, exitcode=code)

    killed = SimpleNamespace(failures={0: failure(0, -15), 1: failure(1, -9)})
    assert describe_failures(killed) == ("rank 1 (local rank 1, pid 101) failed: killed by SIGKILL; "
                                         "the launcher then stopped rank 0")
    # A SIGTERM from outside (a scheduler) stopped every rank: all are named.
    stopped = SimpleNamespace(failures={0: failure(0, -15), 1: failure(1, -15)})
    assert describe_failures(stopped).count("killed by SIGTERM") == 2
    assert describe_failures(SimpleNamespace(failures={1: failure(1, 1)})) == "rank 1 (local rank 1, pid 101) failed: exit code 1"
    # rank 0 lost its peer and exited with an error before the launcher saw rank 1's kill: the kill
    # is the cause, and comes first
    both = SimpleNamespace(failures={0: failure(0, 1), 1: failure(1, -9)})
    assert describe_failures(both) == ("rank 1 (local rank 1, pid 101) failed: killed by SIGKILL; "
                                       "rank 0 (local rank 0, pid 100) failed: exit code 1")


def test_train_nproc_needs_a_positive_count(capsys: pytest.CaptureFixture[str]) -> None:
    from classiformer.cli import main
    from classiformer.cli.train_cmd import _without_nproc

    assert main(["train", "--train", "x.csv", "--nproc", "0"]) == 1
    assert "--nproc 0: expected at least 1 process" in capsys.readouterr().err
    assert _without_nproc(["-v", "train", "--nproc", "2", "--epochs", "3", "--nproc=4"]) == ["-v", "train", "--epochs", "3"]
