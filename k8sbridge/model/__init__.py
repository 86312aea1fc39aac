"""Pure shared domain values (ids, resources): no I/O, no third-party imports."""
