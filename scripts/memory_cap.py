"""Run a command under a hard memory limit, as a container's: does it fit?

    python scripts/memory_cap.py --limit 1024 [--cold] -- COMMAND [ARG ...]
    python scripts/memory_cap.py --limit 700 --cold -- \
        .venv/bin/python scripts/bench_store.py --start-training STORE --later-batches 100

Resident memory (RSS) counts file-backed pages, the libraries' code and memory-mapped data, that the
kernel keeps while it has room and drops under pressure, so a peak RSS above a limit does not say
that a process needs more. This runs COMMAND in a new Linux memory cgroup (v1, else v2) limited to
``--limit`` MB (MiB) with no swap, as a container's limit is, and says whether it ran to its end
within it. ``--cold`` first drops the page cache (sync, then /proc/sys/vm/drop_caches), so that the
pages COMMAND reads are charged to the limit, as in a fresh container; pages another running process
maps stay in memory and are not (run it on an otherwise idle machine, from this script: it imports
nothing but the standard library). Needs root.

Prints COMMAND's standard output as it is, then one JSON line: ``limit_mb``, ``cold`` (true, or why
the cache could not be dropped), ``exit`` (COMMAND's exit status; -9: killed), ``outcome`` ("ran to
its end within the limit", "killed at the limit", "failed", or "not run: why"), ``peak_mb`` (the most
the limit was charged, where the kernel records it), ``file_mb`` (page cache charged to it at the end:
what was read while it ran), ``oom_kills`` (processes the kernel killed at the limit) and
``stderr`` (the end of COMMAND's error output, where it failed). Exits with COMMAND's status (1
where it was not run).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

__all__ = ["run_capped", "main"]

_V1 = Path("/sys/fs/cgroup/memory")
_V2 = Path("/sys/fs/cgroup")
# joins the cgroup named by $1, then becomes the command: no Python code runs in the forked child
_JOIN_THEN_EXEC = 'echo $$ > "$1" && shift && exec "$@"'


def run_capped(command: list[str], limit_mb: int, cold: bool = False) -> tuple[dict, str]:
    """Run ``command`` under a hard ``limit_mb`` MB limit: how it went (the JSON line's fields) and
    its standard output."""
    said: dict = {"limit_mb": limit_mb, "cold": False}
    group = _new_group(limit_mb)
    if isinstance(group, str):
        return {**said, "exit": None, "outcome": f"not run: {group}"}, ""
    try:
        if cold:
            said["cold"] = _drop_page_cache()
        tasks = group / ("tasks" if (group / "tasks").exists() else "cgroup.procs")
        done = subprocess.run(["sh", "-c", _JOIN_THEN_EXEC, "sh", str(tasks), *command],
                              capture_output=True, text=True)
        charged = _charged(group)
    finally:
        group.rmdir()  # its charges go to the parent group
    outcome = ("ran to its end within the limit" if done.returncode == 0 else
               "killed at the limit" if charged["oom_kills"] else "failed")
    stderr = "" if done.returncode == 0 else done.stderr[-2000:]
    return {**said, "exit": done.returncode, "outcome": outcome, **charged, "stderr": stderr}, done.stdout


def _new_group(limit_mb: int) -> Path | str:
    """A new memory cgroup limited to ``limit_mb`` MB, swap included; or why none could be made."""
    limit = str(limit_mb * 2**20)
    if (_V1 / "cgroup.procs").exists():
        root, memory, swap, no_swap = _V1, "memory.limit_in_bytes", "memory.memsw.limit_in_bytes", limit
    elif (_V2 / "cgroup.controllers").exists():
        if "memory" not in (_V2 / "cgroup.subtree_control").read_text().split():
            return "the cgroup v2 memory controller is not enabled for child groups here"
        root, memory, swap, no_swap = _V2, "memory.max", "memory.swap.max", "0"
    else:
        return "no memory cgroup on this machine (Linux cgroups only)"
    group = root / f"mammo-memory-cap-{os.getpid()}"
    try:
        group.mkdir()
        (group / memory).write_text(limit)
        if (group / swap).exists():  # absent where swap is not accounted: the limit holds for memory alone
            (group / swap).write_text(no_swap)
    except OSError as error:
        if group.exists():
            group.rmdir()
        return f"no memory cgroup with a limit could be made under {root} ({error.strerror}; needs root)"
    return group


def _drop_page_cache() -> bool | str:
    """Drop the clean page cache: True, or why it could not be."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError as error:
        return f"not dropped: {error.strerror}"
    return True


def _charged(group: Path) -> dict:
    """What the group was charged: its peak (MB, None where not recorded), the page cache charged to it
    now (MB), and how many of its processes the kernel killed at the limit."""
    def table(name: str) -> dict[str, int]:
        return {key: int(value) for key, value in
                (line.split() for line in (group / name).read_text().splitlines())}

    def number(name: str) -> int:
        return int((group / name).read_text()) if (group / name).exists() else 0

    if (group / "memory.max_usage_in_bytes").exists():  # v1
        peak, file = number("memory.max_usage_in_bytes"), table("memory.stat")["cache"]
        killed = table("memory.oom_control").get("oom_kill", 0)
    else:  # v2 (memory.peak from Linux 5.19)
        peak, file = number("memory.peak") or None, table("memory.stat")["file"]
        killed = table("memory.events").get("oom_kill", 0)
    return {"peak_mb": None if peak is None else round(peak / 2**20, 1), "file_mb": round(file / 2**20, 1),
            "oom_kills": killed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, required=True, metavar="MB", help="the hard limit, in MiB")
    parser.add_argument("--cold", action="store_true", help="drop the page cache first (root)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARG ...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("name the command to run after --")
    # stopped (kill PID): the command is killed and the cgroup removed on the way out, not left behind
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    said, stdout = run_capped(command, args.limit, args.cold)
    sys.stdout.write(stdout)
    print(json.dumps(said))
    return 1 if said["exit"] is None else said["exit"] if said["exit"] >= 0 else 128 - said["exit"]


if __name__ == "__main__":
    raise SystemExit(main())
