"""Models from the cloud: the registry (:mod:`deploy.models.registry`); each version's
manifest, read on devices too, is :mod:`core.models.manifest`."""
