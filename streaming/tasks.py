"""django-q2 task entry points (default cluster)."""

from streaming.services import stream_sessions_sweep


def stream_sessions_sweep_task() -> int:
    return stream_sessions_sweep()
