"""Background work: the queue (enqueue inside the caller's transaction) and the worker."""
