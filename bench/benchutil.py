"""Helpers shared by the bench/ scripts (imported from the bench/ folder)."""
import os
import platform
import socket
import time


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_model(fallback=None):
    """The CPU's model name from /proc/cpuinfo, else `fallback` (default: the machine type)."""
    try:
        return [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")][0]
    except (OSError, IndexError):
        return platform.machine() if fallback is None else fallback


def proc_cpu_seconds(pid):
    """User + system CPU seconds of process `pid` (/proc/PID/stat), None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None
