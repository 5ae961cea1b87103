"""Asterisk queue_log lines, as a forwarder tailing ``/var/log/asterisk/queue_log`` posts them.

``epoch|callid|queuename|agent|event|data1|data2|...``; durations in whole seconds except
RINGNOANSWER's ring time (milliseconds). Times are offsets from the story start.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class QueueLogLine:
    at: float
    callid: str  # "NONE" for member events
    queue: str
    agent: str  # interface such as PJSIP/2001, or "NONE"
    event: str
    data: tuple[str, ...] = ()

    def summary(self) -> dict[str, object]:
        return {"event": self.event, "callid": self.callid, "queue": self.queue}


def line(ev: QueueLogLine, origin: float) -> str:
    """The queue_log line of ``ev`` in a story that started at ``origin`` (epoch seconds)."""
    return "|".join((str(int(origin + ev.at)), ev.callid, ev.queue, ev.agent, ev.event, *ev.data))
