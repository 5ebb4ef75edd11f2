"""The Django bench app (issue 15): one view returning JSON through the ORM, from an SQLite file that
`python -m djbench.make_db` makes at the bench's startup (its path in DJBENCH_DB)."""
