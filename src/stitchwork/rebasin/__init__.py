"""Re-basin: permutation specs, weight/activation matching, interpolation, BN reset, REPAIR,
and mode-combinability (element-wise convex combinations of aligned models)."""
