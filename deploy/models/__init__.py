"""Models from the cloud: the registry (:mod:`deploy.models.registry`) and each version's
manifest (:mod:`deploy.models.manifest`)."""
