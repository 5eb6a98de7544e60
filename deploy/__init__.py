"""edgeloop deploy: the model registry (:mod:`deploy.models`, ``python -m deploy model``) and
the monitoring files (:mod:`deploy.monitoring`); packaging and rollout come later."""
