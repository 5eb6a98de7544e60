"""``python -m bench``: measure edgeloop on the machine it runs on, side by side with the
alternatives a user would otherwise pick, and write reports that CI and dashboards read
(their format: :mod:`bench.schema`).
"""
