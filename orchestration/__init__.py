"""Scale-out of tap-commerce-exports on Dagster: groups of accounts as partitions.

Nothing here imports the tap: this package runs in its own venv (`.venv-dagster`, from
`requirements/orchestration.txt`) beside Dagster, and reaches the tap only through
`meltano run`, as a user would. See orchestration/README.md.
"""
