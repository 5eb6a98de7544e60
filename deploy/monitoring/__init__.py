"""Prometheus rules and configuration, Grafana dashboards (written by :mod:`.dashboards`)."""
