"""Reading what VMs do, for QemuDriver: resource samples and the serial console.

Samples: one SSH command per call, `sh -c` running the fixed script below with the VM
folders as its arguments (quoted by `quote_argv`, like every remote command line). For
each folder that holds a VM record, concurrently, it prints lines tagged with the
folder's index:

- `disk`: the overlay's allocated size (`du -k disk.qcow2`), what the VM wrote;
- when the VM's QEMU process lives (the pid in its pidfile, whose command line names
  that pidfile, so a recycled pid is never taken for it): the host's clock (`now`),
  `/proc/<pid>/stat` (utime + stime is the CPU time of every QEMU thread, starttime
  with the boot time and CLK_TCK gives the start), `VmRSS` from `/proc/<pid>/status`,
  and the run state from QMP (`query-status`).

QMP is reached through `socat` as everywhere in the driver, with a FIFO feeding its
input so that the script sends each command after QEMU's previous answer and hangs up
as soon as the status arrives (closing right after writing could drop a queued
command). The monitor serves one client at a time: when a job holds it, `socat -T`
gives up after a few seconds of silence and the live process is reported running.

CPU percentages come from two successive samples, as for containers (the collector
keeps the previous counters; see `shared.health.cpu_percent`): `started_ns` is built
from the host's boot time in whole seconds, so it stays the same between samples of
one QEMU process and changes when the VM restarts.

Logs: the tail of `console.log`, the serial console of the current (or last) boot,
read with `tail` (at most `tail` lines and `CONSOLE_WINDOW_BYTES`). The console has no
timestamps: lines carry `at_ns=None` and `since_ns` cannot filter them, so a read
always answers the tail; a follower tells new lines from the ones it showed by their
overlap (`shared.health.after_overlap`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from infra.drivers.qemu.record import qmp_state
from infra.drivers.ssh.connection import SshConnection
from shared.health import NS_PER_SECOND, LogLine, Stats, console_lines
from shared.runtime import RuntimeState

# How much of a console a read transfers at most (the API cuts a reply at
# `settings.logs_max_bytes`, 1 MiB by default, anyway).
CONSOLE_WINDOW_BYTES = 1024 * 1024
STATS_TIMEOUT = 30.0
_DEFAULT_CLK_TCK = 100

# QMP `query-status` → state, as QemuDriver's inspect reads it: anything but running
# (paused, suspended, prelaunch, ...) does not execute the guest.

# $@: the VM folders. Output: `host <now_ns> <clk_tck> <btime>`, then for each folder
# i that holds a VM: `i vm`, `i disk <du -k>`, and while its QEMU lives `i now <ns>`,
# `i stat <…>`, `i rss <VmRSS line>`, `i qmp <query-status answer>`.
STATS_SCRIPT = r"""
qmp_status() {
  mkfifo "$2" 2>/dev/null || return 0
  socat -T 3 - "UNIX-CONNECT:$1" 2>/dev/null <"$2" | {
    exec 4>"$2"
    asked=
    while IFS= read -r line; do
      case $line in
        '{"QMP"'*) printf '%s\n' '{"execute": "qmp_capabilities"}' >&4 ;;
        '{"return"'*)
          if [ -n "$asked" ]; then printf '%s\n' "$line"; break; fi
          asked=1
          printf '%s\n' '{"execute": "query-status"}' >&4 ;;
        '{"error"'*) break ;;
      esac
    done
    exec 4>&-
  }
}
sample() {
  dir=$2
  [ -f "$dir/corral.json" ] || return 0
  printf '%s vm\n' "$1"
  printf '%s disk %s\n' "$1" "$(du -k -- "$dir/disk.qcow2" 2>/dev/null)"
  pid=$(cat -- "$dir/qemu.pid" 2>/dev/null)
  case $pid in ''|*[!0-9]*) return 0 ;; esac
  tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline" | grep -qxF -- "$dir/qemu.pid" || return 0
  printf '%s now %s\n' "$1" "$(date +%s%N)"
  printf '%s stat %s\n' "$1" "$(cat 2>/dev/null "/proc/$pid/stat")"
  printf '%s rss %s\n' "$1" "$(grep 2>/dev/null '^VmRSS:' "/proc/$pid/status")"
  [ -n "$tmp" ] || return 0
  printf '%s qmp %s\n' "$1" "$(qmp_status "$dir/qmp.sock" "$tmp/$1.fifo")"
}
tmp=$(mktemp -d 2>/dev/null) || tmp=
trap '[ -z "$tmp" ] || rm -rf -- "$tmp"' EXIT
printf 'host %s %s %s\n' "$(date +%s%N)" "$(getconf CLK_TCK)" "$(sed -n 's/^btime //p' /proc/stat)"
i=0
for dir do
  (out=$(sample "$i" "$dir"); [ -z "$out" ] || printf '%s\n' "$out") &
  i=$((i + 1))
done
wait
"""

# $1: lines, $2: bytes, $3: the console file (missing: no output).
TAIL_SCRIPT = 'test -f "$3" || exit 0; tail -n "$1" -- "$3" | tail -c "$2"'


def stats(ssh: SshConnection, folders: Mapping[str, str]) -> dict[str, Stats]:
    """Sample the VMs whose folders are given (workload id → folder); VMs without a
    record are left out."""
    ids = list(folders)
    if not ids:
        return {}
    argv = ["sh", "-c", STATS_SCRIPT, "corral-stats", *(folders[i] for i in ids)]
    out = ssh.check(argv, timeout=STATS_TIMEOUT)
    return parse_stats(out.decode(errors="replace"), ids, time.time_ns())


def logs(ssh: SshConnection, console_path: str, tail: int) -> list[LogLine]:
    """The last `tail` lines of a VM's serial console, oldest first."""
    if tail <= 0:
        return []
    window = CONSOLE_WINDOW_BYTES
    argv = ["sh", "-c", TAIL_SCRIPT, "corral-console", str(tail), str(window + 1), console_path]
    data = ssh.check(argv)
    if len(data) > window:  # cut inside a line: drop what is left of it
        cut = data.find(b"\n")
        data = data[cut + 1 :] if 0 <= cut < len(data) - 1 else data[-window:]
    return console_lines(data, tail)


# -- parsing the script's output (no I/O) -----------------------------------------------


def parse_stats(out: str, ids: list[str], local_now_ns: int) -> dict[str, Stats]:
    """The samples in the stats script's output, for the VMs `ids` (in argument order).
    `local_now_ns` stands in for the host's clock if the host could not tell it."""
    host_now, clk_tck, btime = local_now_ns, _DEFAULT_CLK_TCK, None
    fields: dict[int, dict[str, str]] = {}
    for line in out.split("\n"):
        head, _, rest = line.strip().partition(" ")
        if head == "host":
            parts = rest.split()
            values = [_int(p) for p in parts] + [None] * (3 - len(parts))
            host_now = values[0] or local_now_ns
            clk_tck = values[1] or _DEFAULT_CLK_TCK
            btime = values[2]
        elif head.isdigit() and int(head) < len(ids):
            key, _, value = rest.partition(" ")
            fields.setdefault(int(head), {})[key] = value.strip()
    found: dict[str, Stats] = {}
    for index, seen in sorted(fields.items()):
        if "vm" in seen:
            workload_id = ids[index]
            found[workload_id] = _sample(workload_id, seen, host_now, clk_tck, btime)
    return found


def _sample(
    workload_id: str, seen: dict[str, str], host_now: int, clk_tck: int, btime: int | None
) -> Stats:
    disk = (_int(_first(seen.get("disk"))) or 0) * 1024
    process = _proc_stat(seen.get("stat", ""))
    if process is None:
        return Stats(workload_id, RuntimeState.STOPPED, sampled_ns=host_now, disk_bytes=disk)
    cpu_ticks, start_ticks = process
    started_ns = None
    if btime is not None:
        started_ns = btime * NS_PER_SECOND + start_ticks * NS_PER_SECOND // clk_tck
    rss_kib = _int(_first(seen.get("rss", "").removeprefix("VmRSS:"))) or 0
    return Stats(
        workload_id,
        _qmp_state(seen.get("qmp", "")),
        sampled_ns=_int(seen.get("now")) or host_now,
        cpu_ns=cpu_ticks * NS_PER_SECOND // clk_tck,
        memory_bytes=rss_kib * 1024,
        disk_bytes=disk,
        started_ns=started_ns,
    )


def _proc_stat(text: str) -> tuple[int, int] | None:
    """(utime + stime, starttime) in clock ticks from a `/proc/<pid>/stat` line (the
    fields after the command name, which is in parentheses and may hold anything)."""
    _, paren, rest = text.rpartition(")")
    fields = rest.split()
    if not paren or len(fields) < 20:
        return None
    # Fields 14, 15 and 22 of proc(5); `fields` starts at field 3.
    utime, stime, start = _int(fields[11]), _int(fields[12]), _int(fields[19])
    if utime is None or stime is None or start is None:
        return None
    return utime + stime, start


def _qmp_state(answer: str) -> RuntimeState:
    """The state QMP reported; running when it did not answer (the process lives and
    another client held its one monitor connection)."""
    try:
        reply: Any = json.loads(answer)
        status = reply["return"]["status"]
    except (ValueError, KeyError, TypeError):
        return RuntimeState.RUNNING
    return qmp_state(str(status))


def _first(text: str | None) -> str | None:
    parts = (text or "").split()
    return parts[0] if parts else None


def _int(text: str | None) -> int | None:
    if text is None or not text.isdigit():
        return None
    return int(text)
