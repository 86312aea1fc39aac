"""Pods to offers: pure placement (feasible, rank, select, stack, plan) plus the async loop."""
