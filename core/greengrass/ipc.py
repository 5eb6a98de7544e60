"""The component's link to the Greengrass nucleus, over its IPC socket.

The nucleus starts a component with ``AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT`` and
``SVCUID`` set (:func:`under_greengrass`); the unmodified ``awsiotsdk`` client
(``GreengrassCoreIPCClientV2``) connects with them. Through it the app:

* reports its state with ``UpdateState`` (``RUNNING``, ``ERRORED``): the nucleus shows it in
  the deployment's status and acts on ``ERRORED`` (a deployment's health gate, a restart);
* follows its configuration with ``SubscribeToConfigurationUpdate`` and ``GetConfiguration``
  under the key :data:`CONFIG_KEY`: the device config, as the recipe's ``DefaultConfiguration``
  and a deployment's merge give it.

The recipe must allow these operations (``accessControl`` of ``aws.greengrass.ipc.config``
is implicit for a component's own configuration; ``UpdateState`` needs none).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any

from core.errors import ConfigError

__all__ = ["CONFIG_KEY", "NucleusLink", "under_greengrass"]

log = logging.getLogger("edgeloop.greengrass")

SOCKET_ENV = "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT"
TOKEN_ENV = "SVCUID"
CONFIG_KEY = "device"
"""The component configuration's key that holds the device config."""
CALL_TIMEOUT_S = 5.0


def under_greengrass() -> bool:
    """Whether the nucleus started this process (both IPC variables are set)."""
    return bool(os.environ.get(SOCKET_ENV)) and bool(os.environ.get(TOKEN_ENV))


def ipc_client() -> Any:
    """A connected ``GreengrassCoreIPCClientV2``; :class:`ConfigError` naming what is missing
    when the SDK is not installed or the nucleus's socket is not there."""
    if not under_greengrass():
        raise ConfigError(
            f"greengrass: {SOCKET_ENV} and {TOKEN_ENV} are not set: this process was not "
            "started by a Greengrass nucleus"
        )
    try:
        from awsiot.greengrasscoreipc.clientv2 import (  # noqa: PLC0415 - the greengrass extra
            GreengrassCoreIPCClientV2,
        )
    except ImportError:
        raise ConfigError(
            "greengrass: the awsiotsdk package is missing: pip install 'edgeloop[greengrass]'"
        ) from None
    return GreengrassCoreIPCClientV2()


class NucleusLink:
    """State reports and configuration updates (see the module docstring). ``on_update`` is
    called from the SDK's event thread when the configuration changed: it must hand the work
    off (a blocking IPC call there, :meth:`configuration` included, would deadlock: that thread
    is the one that reads the answer)."""

    def __init__(self, on_update: Callable[[], None]) -> None:
        self.client = ipc_client()
        self.on_update = on_update
        self.state: str | None = None
        self._operation: Any = None

    def subscribe(self) -> None:
        """Follow configuration updates under :data:`CONFIG_KEY`."""
        _, self._operation = self.client.subscribe_to_configuration_update(
            key_path=[CONFIG_KEY],
            on_stream_event=self._updated,
            on_stream_error=self._stream_error,
        )

    def configuration(self) -> dict[str, Any]:
        """The device config data the nucleus holds now ({} when the key is absent)."""
        response = self.client.get_configuration(key_path=[CONFIG_KEY])
        value = response.value
        return dict(value) if isinstance(value, dict) else {}

    def _updated(self, event: Any) -> None:
        del event  # which keys changed: the whole device config is read again
        try:
            self.on_update()
        except Exception as exc:  # reported, never raised into the SDK's thread
            log.error("greengrass: a configuration update was not taken: %s", exc)

    def _stream_error(self, error: Exception) -> bool:
        log.error("greengrass: the configuration update stream failed: %s", error)
        return False  # keep the stream open

    def report(self, state: str) -> None:
        """``UpdateState`` (``RUNNING`` or ``ERRORED``), once per change, waiting for the
        nucleus's answer at most :data:`CALL_TIMEOUT_S`."""
        if state == self.state:
            return
        try:
            self.client.update_state_async(state=state).result(CALL_TIMEOUT_S)
        except Exception as exc:
            log.error("greengrass: UpdateState %s failed: %s", state, exc)
            return
        self.state = state
        log.info("greengrass: component state %s", state)

    def close(self) -> None:
        if self._operation is not None:
            with contextlib.suppress(Exception):  # already closed with the connection
                self._operation.close()
        self.client.close()
