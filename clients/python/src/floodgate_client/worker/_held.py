"""The jobs a worker holds: claimed, and not yet reported (or dropped)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple, Union

from ..models import ClaimedJob
from .context import AsyncJobContext, CancelReason, SyncJobContext


@dataclass
class Held:
    """One claimed job: its context, the task running its handler, and its lease's local
    deadline (the last extension the server confirmed, plus the lease length)."""

    job: ClaimedJob
    ctx: Union[AsyncJobContext, SyncJobContext]
    deadline: float
    """``loop.time()`` past which the lease may have run out: treat it as lost."""
    task: Optional["asyncio.Task[None]"] = None
    running: bool = True
    """Whether the handler has not returned yet."""
    settled: bool = False
    """Whether its outcome was decided (reported, being reported, or dropped)."""

    @property
    def is_async(self) -> bool:
        """Whether the handler runs on the event loop (so it can be cancelled)."""
        return isinstance(self.ctx, AsyncJobContext)

    def stop(self, reason: CancelReason) -> bool:
        """Fires the job's cancellation signal and, for an async handler, cancels its task;
        ``True`` when this was the first signal."""
        first = self.ctx._fire(reason)
        if first and self.running and self.is_async and self.task is not None:
            self.task.cancel()
        return first


@dataclass
class HeldJobs:
    """The held jobs by id, and an event set whenever one is let go (a slot may be free)."""

    jobs: Dict[int, Held] = field(default_factory=dict)
    freed: asyncio.Event = field(default_factory=asyncio.Event)

    def __len__(self) -> int:
        return len(self.jobs)

    def __iter__(self) -> Iterator[Held]:
        return iter(list(self.jobs.values()))

    def add(self, held: Held) -> None:
        """Starts holding a job."""
        self.jobs[held.job.id] = held

    def get(self, job_id: int) -> Optional[Held]:
        """The held job with this id, if still held."""
        return self.jobs.get(job_id)

    def forget(self, held: Held) -> None:
        """Stops holding a job (reported, released or dropped)."""
        if self.jobs.get(held.job.id) is held:
            del self.jobs[held.job.id]
            self.freed.set()

    def leases(self) -> List[Tuple[int, str]]:
        """``(id, lease_token)`` of every held job, for heartbeats."""
        return [(h.job.id, h.job.lease_token) for h in self.jobs.values()]
