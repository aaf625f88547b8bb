"""Stop training cleanly on SIGTERM or Ctrl-C (SIGINT): save a checkpoint, then exit non-zero.

A cluster's scheduler sends SIGTERM before it kills a job; a person presses Ctrl-C. Either way the
default ends the process wherever it is: mid-step, or mid-way through writing a checkpoint. Here the
signal only sets a flag; at the end of the current optimizer step (the last of an epoch: after the
epoch's evaluation) the callback asks the Trainer to save a checkpoint and stop, and the caller then raises :class:`~smart_tune.errors.Interrupted`, which
names the checkpoint. A second signal stops at once (the checkpoint being written, if any, is
removed; the newest complete one stays).

    stop = StopOnSignal()
    trainer.add_callback(stop)
    with stop:                       # handlers installed here, the previous ones restored after
        try:
            trainer.train()
        except Interrupted:          # a second signal
            raise stop.interrupted(output_dir, trainer.state, at_once=True) from None
    if stop.signum is not None:
        raise stop.interrupted(output_dir, trainer.state)

Limits: the handlers are Python's, so they act between two Python operations (a long C++ kernel
finishes first), and only in the main thread (elsewhere nothing is installed). DataLoader workers
(``dataloader_num_workers > 0``) receive a terminal's Ctrl-C themselves and exit, which ends training
with an error before the checkpoint; the command line's default is no workers.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

from transformers import TrainerCallback

from .errors import Interrupted

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def ends_epoch(state) -> bool:
    """Whether the step just taken is the last of its epoch (the Trainer sets ``state.epoch`` to
    ``epoch + steps done / steps in the epoch``: a whole number exactly then)."""
    return state.epoch is not None and float(state.epoch).is_integer()


class StopOnSignal(TrainerCallback):
    """A callback and a context manager: while inside ``with``, SIGTERM and SIGINT stop training at the
    end of the current optimizer step, after a checkpoint is saved."""

    def __init__(self, signals: tuple[int, ...] = SIGNALS):
        self.signals = signals
        self.signum: int | None = None  # the first signal received
        self.saved_step: int | None = None  # the step whose checkpoint the stop saved
        self._previous: dict[int, Any] = {}

    # -- the handlers ------------------------------------------------------------------------------

    def __enter__(self) -> StopOnSignal:
        self.signum, self.saved_step = None, None
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame) -> None:
        if self.signum is None:
            self.signum = signum
            return
        # A second signal: the user will not wait for the end of the step.
        raise Interrupted(
            f"stopped at once by a second {signal.Signals(signum).name}; nothing was saved for the "
            "current step",
            signum,
        )

    # -- the callback ------------------------------------------------------------------------------

    def _requested(self, args) -> bool:
        """Whether any process received a signal (all processes must stop at the same step)."""
        requested = self.signum is not None
        try:
            import torch
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
                flag = torch.tensor([1.0 if requested else 0.0], device=args.device)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                requested = bool(flag.item())
                if requested and self.signum is None:
                    self.signum = signal.SIGTERM  # another process's signal
        except ImportError:  # pragma: no cover - torch is a dependency
            pass
        return requested

    def on_step_end(self, args, state, control, **kwargs):
        if self._requested(args):
            if self.saved_step is None and state.is_world_process_zero:
                name = signal.Signals(self.signum).name
                print(
                    f"smart-tune: {name} received; saving a checkpoint at step {state.global_step} and "
                    "stopping (send it again to stop at once)",
                    file=sys.stderr,
                    flush=True,
                )
            control.should_training_stop = True
            # At the last step of an epoch the save waits for the epoch's evaluation (on_epoch_end), as
            # in a run left alone: saved before it, the resumed run would start the next epoch and that
            # epoch would never be scored (nor be a candidate for the best). save_strategy="best" may
            # skip the save after the evaluation: it saves at the step.
            if not (ends_epoch(state) and args.save_strategy != "best"):
                control.should_save = True

    def on_save(self, args, state, control, **kwargs):
        if self.signum is not None:
            self.saved_step = state.global_step

    def on_epoch_end(self, args, state, control, **kwargs):
        # Stopping mid-epoch ends the epoch early: no end-of-epoch evaluation. A save only if the step's
        # own save did not happen (an epoch's last step: after the epoch's evaluation).
        if self.signum is not None:
            if not ends_epoch(state):
                control.should_evaluate = False
            control.should_save = self.saved_step != state.global_step

    # -- the result --------------------------------------------------------------------------------

    def interrupted(self, output_dir, state=None, at_once: bool = False) -> Interrupted:
        """The error to raise once ``train()`` has returned after a signal (``at_once``: ``train()``
        raised on a second signal). It names the checkpoint to resume from."""
        from .checkpoints import last_complete_checkpoint

        name = signal.Signals(self.signum).name
        where = ""
        if state is not None and getattr(state, "max_steps", 0):
            where = f" at step {state.global_step} of {state.max_steps}"
        stopped = f"stopped at once by a second {name}{where}" if at_once else f"interrupted by {name}{where}"
        checkpoint = last_complete_checkpoint(output_dir)
        if checkpoint is None:
            return Interrupted(f"{stopped}; no checkpoint was saved", self.signum)
        saved = self.saved_step is not None and checkpoint.endswith(f"checkpoint-{self.saved_step}")
        return Interrupted(
            f"{stopped}; {'checkpoint saved in' if saved else 'the newest checkpoint is'} {checkpoint}; "
            "run the same command with --resume to continue",
            self.signum,
        )
