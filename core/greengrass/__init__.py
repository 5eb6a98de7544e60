"""Running as a Greengrass v2 component: the nucleus's IPC (``awsiotsdk``, the ``greengrass``
extra) for the component's state, MQTT through the nucleus, and configuration updates."""

from core.greengrass.ipc import CONFIG_KEY, NucleusLink, under_greengrass

__all__ = ["CONFIG_KEY", "NucleusLink", "under_greengrass"]
