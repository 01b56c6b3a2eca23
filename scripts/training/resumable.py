"""Resumable CPU training runs: the plumbing the model trainers share (issue 23: "a run longer than one
sitting continues later from a reproducible checkpoint, with the seed and schedule recorded, so CPU time
spent on different days adds up").

A run lives in one folder:
  last.pt    model, optimizer (and whatever the trainer adds), step, RNG states, validation history, best
  run.json   the schedule fixed at the start, steps done, CPU and wall seconds summed and per session
  best.pt    the best validated weights so far (what the export scripts read)
--resume reads last.pt + run.json, takes the recorded schedule (a different one on the command line is an
error) and continues; a run stopped by SIGTERM/SIGINT saves first. Written by hand: torch has no
equivalent helper, and the trainers must stay runnable with Debian's python3-torch alone.
"""
import json
import math
import os
import random
import signal
import sys
import time

import numpy as np
import torch


def cosine_lr(step, steps, lr, warmup, floor=0.02):
    """Fixed schedule: linear warm-up over `warmup` steps, then cosine from lr to floor*lr at `steps`."""
    frac = min(1.0, step / steps)
    return lr * min(1.0, (step + 1) / warmup) * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * frac)))


def cosine_formula(floor=0.02):
    return f"lr(s) = lr * min(1, (s+1)/warmup) * ({floor} + {1 - floor:g}*0.5*(1+cos(pi*min(1, s/steps))))"


def _atomic(path, write):
    write(path + ".tmp")
    os.replace(path + ".tmp", path)


def atomic_torch_save(obj, path):
    _atomic(path, lambda tmp: torch.save(obj, tmp))


def atomic_json(obj, path):
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1)
    _atomic(path, write)


class Run:
    """One training run's folder, schedule, session accounting and stop flag."""

    def __init__(self, parser, args, schedule_keys, recorded_before=None):
        """`recorded_before`: for schedule keys added to a trainer after some runs were recorded, the value
        those runs ran with; a resumed run that did not record the key gets it (not today's default)."""
        self.args = args
        self.schedule_keys = schedule_keys
        given = {a.dest for a in parser._actions for s in sys.argv[1:] for o in a.option_strings
                 if s == o or s.startswith(o + "=")}
        os.makedirs(args.out, exist_ok=True)
        self.ckpt_path = os.path.join(args.out, "last.pt")
        self.run_path = os.path.join(args.out, "run.json")
        self.best_path = os.path.join(args.out, "best.pt")
        self.recorded = None
        if args.resume:
            if not (os.path.exists(self.run_path) and os.path.exists(self.ckpt_path)):
                sys.exit(f"--resume: no {self.run_path} / {self.ckpt_path}")
            with open(self.run_path) as f:
                self.recorded = json.load(f)
            for k in schedule_keys:  # the schedule recorded at the start wins
                if k in self.recorded["schedule"] and k in given and getattr(args, k) != self.recorded["schedule"][k]:
                    sys.exit(f"--resume: {k}={getattr(args, k)} differs from the recorded schedule "
                             f"{self.recorded['schedule'][k]}")
                if k in self.recorded["schedule"]:
                    setattr(args, k, self.recorded["schedule"][k])
                elif recorded_before and k in recorded_before:
                    setattr(args, k, recorded_before[k])
        elif os.path.exists(self.ckpt_path) or os.path.exists(self.run_path):
            sys.exit(f"{args.out} already holds a run (last.pt / run.json): use --resume, or another --out")
        self.cpu_total, self.wall_total, self.sessions = 0.0, 0.0, []
        if self.recorded is not None:
            self.cpu_total = self.recorded["cpu_seconds"]
            self.wall_total = self.recorded["wall_seconds"]
            self.sessions = self.recorded["sessions"]
        self.t0, self.c0 = time.time(), time.process_time()
        self.step0 = 0
        self.stop_requested = False
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum, frame):
        self.stop_requested = True

    def should_stop(self):
        budget = getattr(self.args, "time_budget", 0)
        return self.stop_requested or bool(budget and time.time() - self.t0 >= budget)

    def elapsed(self):
        """Wall seconds of the whole run so far (all sessions)."""
        return self.wall_total + time.time() - self.t0

    # ----------------------------------------------------------------- checkpoint
    @staticmethod
    def rng_state(extra=None):
        return dict(python=random.getstate(), numpy=np.random.get_state(), torch=torch.get_rng_state(),
                    extra={k: r.get_state() for k, r in (extra or {}).items()})

    @staticmethod
    def set_rng_state(state, extra=None):
        random.setstate(state["python"])
        np.random.set_state(state["numpy"])
        torch.set_rng_state(state["torch"])
        for k, r in (extra or {}).items():
            r.set_state(state["extra"][k])

    def load(self):
        """The checkpoint to resume from (None for a new run). Re-writes best.pt as of that checkpoint: a
        session killed hard after a later best.pt must not leave weights the run does not know."""
        if self.recorded is None:
            return None
        ck = torch.load(self.ckpt_path, map_location="cpu")
        self.step0 = ck["step"]
        best = ck.get("best") or {}
        if best.get("model") is not None:
            atomic_torch_save(dict(model=best["model"], step=best["step"], val=best["val"], args=vars(self.args)),
                              self.best_path)
        elif os.path.exists(self.best_path):
            os.remove(self.best_path)
        return ck

    def save_best(self, model_state, step, val):
        atomic_torch_save(dict(model=model_state, step=step, val=val, args=vars(self.args)), self.best_path)

    def save(self, checkpoint, step, done, summary):
        """Writes last.pt (checkpoint must hold 'step') and run.json with the session accounting."""
        atomic_torch_save(checkpoint, self.ckpt_path)
        wall, cpu = time.time() - self.t0, time.process_time() - self.c0
        sessions = self.sessions + [dict(start_step=self.step0, end_step=step, wall_seconds=round(wall, 1),
                                         cpu_seconds=round(cpu, 1), threads=torch.get_num_threads(),
                                         ended=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))]
        record = dict(schedule={k: getattr(self.args, k) for k in self.schedule_keys}, step=step, done=done,
                      cpu_seconds=self.cpu_total + cpu, wall_seconds=self.wall_total + wall, sessions=sessions,
                      **summary)
        atomic_json(record, self.run_path)
