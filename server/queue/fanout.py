"""Running one function over several items on a few threads: a job's recipes side by side."""
from __future__ import annotations

import threading
from typing import Any, Callable, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def side_by_side(fn: Callable[[T], R], items: Sequence[T], threads: int) -> list[R]:
    """``[fn(item) for item in items]`` on up to ``threads`` threads (the caller's among them);
    raises the first failure in ``items`` order once every item has been tried.

    Daemon threads, not a thread pool: a worker stopping after its shutdown grace hands its jobs back
    and exits without waiting for renders still computing (a pool's threads are joined at exit).
    """
    results: list[Any] = [None] * len(items)
    errors: list[BaseException | None] = [None] * len(items)
    order = iter(range(len(items)))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                index = next(order, None)
            if index is None:
                return
            try:
                results[index] = fn(items[index])
            except BaseException as exc:  # re-raised below, in order
                errors[index] = exc

    helpers = [threading.Thread(target=work, daemon=True) for _ in range(min(threads, len(items)) - 1)]
    for helper in helpers:
        helper.start()
    work()
    for helper in helpers:
        helper.join()
    for error in errors:
        if error is not None:
            raise error
    return results
