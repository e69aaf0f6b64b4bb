"""Thin Hydra entry points: compose config, call the library, write results.

Only this package imports Hydra, OmegaConf and W&B.
"""
