"""The worker: claims queued tasks and runs their handlers."""

from hostimage.tasks.worker.loop import Worker

__all__ = ["Worker"]
