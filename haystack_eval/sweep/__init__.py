"""Sweeps: planning cells, the async runner, and the run directory."""

from haystack_eval.sweep.plan import Cell, Plan, cells
from haystack_eval.sweep.runner import Tally
from haystack_eval.sweep.session import Run, arun, default_out, load_run, plan_run, run
from haystack_eval.sweep.store import RunStore

__all__ = ["Cell", "Plan", "Run", "RunStore", "Tally", "arun", "cells", "default_out", "load_run", "plan_run", "run"]
